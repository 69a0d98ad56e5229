package kafkaconn_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"

	"github.com/snaplog/snaplog/kafkaconn"
)

func write(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// selfSigned writes a self-signed certificate and its key as PEM files.
func selfSigned(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return write(t, "cert.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))),
		write(t, "key.pem", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})))
}

// TestValidate: every problem of a config is named at once.
func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    kafkaconn.Config
		want []string
	}{
		{"nothing", kafkaconn.Config{}, []string{"brokers: none given"}},
		{"bad broker and half a client cert", kafkaconn.Config{Brokers: []string{"kafka"}, TLS: kafkaconn.TLS{CertFile: "/x.pem"}},
			[]string{`brokers: "kafka" is not host:port`, "needs both its cert file and its key file", "tls: cert file: stat /x.pem"}},
		{"insecure with a CA", kafkaconn.Config{Brokers: []string{"k:1"}, TLS: kafkaconn.TLS{InsecureSkipVerify: true, CAFile: "/nope"}},
			[]string{"the CA would not be used", "tls: CA file: stat /nope"}},
		{"scram without credentials", kafkaconn.Config{Brokers: []string{"k:1"}, SASL: kafkaconn.SASL{Mechanism: kafkaconn.ScramSHA512}},
			[]string{"sasl SCRAM-SHA-512: no username", "no password or password file"}},
		{"plain with both passwords", kafkaconn.Config{Brokers: []string{"k:1"}, SASL: kafkaconn.SASL{Mechanism: kafkaconn.Plain, Username: "u", Password: "p", PasswordFile: "/p"}},
			[]string{"both a password and a password file"}},
		{"oauth without token", kafkaconn.Config{Brokers: []string{"k:1"}, SASL: kafkaconn.SASL{Mechanism: kafkaconn.OAuthBearer, Username: "u"}},
			[]string{"sasl OAUTHBEARER: no token file", "takes a token file only"}},
		{"iam without tls", kafkaconn.Config{Brokers: []string{"k:1"}, SASL: kafkaconn.SASL{Mechanism: kafkaconn.AWSMSKIAM, AccessKey: "a"}},
			[]string{"needs TLS", "an access key needs its secret key"}},
		{"unknown mechanism", kafkaconn.Config{Brokers: []string{"k:1"}, SASL: kafkaconn.SASL{Mechanism: "GSSAPI"}},
			[]string{`unknown mechanism "GSSAPI"`}},
		{"credentials without mechanism", kafkaconn.Config{Brokers: []string{"k:1"}, SASL: kafkaconn.SASL{Username: "u"}},
			[]string{"credentials given without a mechanism"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.Validate()
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
			if _, err := tc.c.Opts(); err == nil {
				t.Error("Opts of an invalid config: no error")
			}
		})
	}
}

// TestOpts: a valid config gives the seed brokers, a TLS dialer and the SASL
// mechanism; files are read; String carries no secret.
func TestOpts(t *testing.T) {
	cert, key := selfSigned(t)
	pass := write(t, "pass", "s3cret-from-file\n")
	for _, tc := range []struct {
		c         kafkaconn.Config
		mechanism string
	}{
		{kafkaconn.Config{Brokers: []string{"k:9092"}}, ""},
		{kafkaconn.Config{Brokers: []string{"k:9096"}, TLS: kafkaconn.TLS{CAFile: cert, CertFile: cert, KeyFile: key},
			SASL: kafkaconn.SASL{Mechanism: kafkaconn.ScramSHA512, Username: "orders", PasswordFile: pass}}, "SCRAM-SHA-512"},
		{kafkaconn.Config{Brokers: []string{"k:9096"}, TLS: kafkaconn.TLS{Enabled: true},
			SASL: kafkaconn.SASL{Mechanism: kafkaconn.ScramSHA256, Username: "orders", Password: "s3cret"}}, "SCRAM-SHA-256"},
		{kafkaconn.Config{Brokers: []string{"k:9096"}, SASL: kafkaconn.SASL{Mechanism: kafkaconn.Plain, Username: "orders", Password: "s3cret"}}, "PLAIN"},
		{kafkaconn.Config{Brokers: []string{"k:9096"}, TLS: kafkaconn.TLS{Enabled: true},
			SASL: kafkaconn.SASL{Mechanism: kafkaconn.OAuthBearer, TokenFile: write(t, "token", "tok\n")}}, "OAUTHBEARER"},
		{kafkaconn.Config{Brokers: []string{"k:9098"}, TLS: kafkaconn.TLS{Enabled: true},
			SASL: kafkaconn.SASL{Mechanism: kafkaconn.AWSMSKIAM, AccessKey: "AKIA", SecretKey: "s3cret"}}, "AWS_MSK_IAM"},
	} {
		opts, err := tc.c.Opts()
		if err != nil {
			t.Fatalf("%s: %v", tc.c, err)
		}
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			t.Fatal(err)
		}
		seeds, _ := cl.OptValue(kgo.SeedBrokers).([]string)
		var got string
		if ms, _ := cl.OptValue(kgo.SASL).([]sasl.Mechanism); len(ms) == 1 {
			got = ms[0].Name()
		}
		cl.Close()
		if strings.Join(seeds, ",") != strings.Join(tc.c.Brokers, ",") || got != tc.mechanism {
			t.Errorf("%s: seeds %v, mechanism %q", tc.c, seeds, got)
		}
		if s := tc.c.String(); strings.Contains(s, "s3cret") {
			t.Errorf("String gives a secret away: %s", s)
		}
	}
	bad := write(t, "bad.pem", "not a certificate")
	if _, err := (kafkaconn.Config{Brokers: []string{"k:1"}, TLS: kafkaconn.TLS{CAFile: bad}}).Opts(); err == nil ||
		!strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("a CA file without a certificate: %v", err)
	}
	empty := write(t, "empty", "\n")
	if _, err := (kafkaconn.Config{Brokers: []string{"k:1"}, SASL: kafkaconn.SASL{Mechanism: kafkaconn.Plain, Username: "u", PasswordFile: empty}}).Opts(); err == nil ||
		!strings.Contains(err.Error(), "empty") {
		t.Errorf("an empty password file: %v", err)
	}
}

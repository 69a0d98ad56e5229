package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/snaplog/snaplog/kafkaconn"
)

// testPKI is a CA, a server certificate it signed for db.test, and a client
// certificate it signed, as PEM files.
type testPKI struct {
	ca                    *x509.CertPool
	caFile                string
	server                tls.Certificate
	clientCert, clientKey string
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	write := func(name string, blocks ...*pem.Block) string {
		var b []byte
		for _, bl := range blocks {
			b = append(b, pem.EncodeToMemory(bl)...)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	newKey := func() (*ecdsa.PrivateKey, *pem.Block) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return key, &pem.Block{Type: "PRIVATE KEY", Bytes: der}
	}
	caKey, _ := newKey()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(serial int64, name string, usage x509.ExtKeyUsage) (*pem.Block, *pem.Block) {
		key, keyPEM := newKey()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return &pem.Block{Type: "CERTIFICATE", Bytes: der}, keyPEM
	}
	pki := testPKI{ca: x509.NewCertPool(), caFile: write("ca.pem", &pem.Block{Type: "CERTIFICATE", Bytes: caDER})}
	pki.ca.AddCert(caCert)
	serverCert, serverKey := sign(2, "db.test", x509.ExtKeyUsageServerAuth)
	if pki.server, err = tls.X509KeyPair(pem.EncodeToMemory(serverCert), pem.EncodeToMemory(serverKey)); err != nil {
		t.Fatal(err)
	}
	clientCert, clientKey := sign(3, "snaplog", x509.ExtKeyUsageClientAuth)
	pki.clientCert, pki.clientKey = write("client.pem", clientCert), write("client-key.pem", clientKey)
	return pki
}

// fakePostgres is a server that answers PostgreSQL's SSLRequest: with 'S'
// and a TLS handshake with the PKI's server certificate (requiring a client
// certificate when mutual), or with 'N' when tlsOff. It reports each
// connection's handshake outcome, then closes it: connections never get
// further than TLS.
func fakePostgres(t *testing.T, pki testPKI, mutual, tlsOff bool) (addr string, handshakes chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	handshakes = make(chan error, 16)
	cfg := &tls.Config{Certificates: []tls.Certificate{pki.server}, MinVersion: tls.VersionTLS12}
	if mutual {
		cfg.ClientAuth, cfg.ClientCAs = tls.RequireAndVerifyClientCert, pki.ca
	}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(10 * time.Second))
				req := make([]byte, 8)
				if _, err := io.ReadFull(conn, req); err != nil {
					handshakes <- err
					return
				}
				if req[4] != 0x04 || req[5] != 0xd2 || req[6] != 0x16 || req[7] != 0x2f { // 80877103
					handshakes <- errors.New("not an SSLRequest: a plaintext startup")
					return
				}
				if tlsOff {
					conn.Write([]byte{'N'})
					handshakes <- errors.New("TLS refused")
					return
				}
				conn.Write([]byte{'S'})
				handshakes <- tls.Server(conn, cfg).Handshake()
			}()
		}
	}()
	return ln.Addr().String(), handshakes
}

// connect parses url, applies t and connects; the fake server closes the
// connection after TLS, so an error is expected all the same.
func connect(t *testing.T, url string, tlsSettings kafkaconn.TLS) error {
	t.Helper()
	pc, err := parsePostgresURL(url)
	if err != nil {
		t.Fatal(err)
	}
	if err := applyPostgresTLS(&pc.ConnConfig.Config, tlsSettings); err != nil {
		t.Fatal(err)
	}
	conn, err := pgconn.ConnectConfig(ctxT(t, 10*time.Second), &pc.ConnConfig.Config)
	if err == nil {
		conn.Close(ctxT(t, time.Second))
	}
	return err
}

// TestPostgresTLSHandshakes: with the -postgres-tls settings the client
// verifies the server's certificate against -postgres-tls-ca and the name
// -postgres-tls-server-name (the URL's host otherwise), presents its own
// certificate, and never falls back to plaintext, whatever the URL's
// sslmode.
func TestPostgresTLSHandshakes(t *testing.T) {
	pki := newTestPKI(t)
	url := func(addr, sslmode string) string {
		return "postgres://u:pw@" + addr + "/db?connect_timeout=5&sslmode=" + sslmode
	}
	waitHandshake := func(t *testing.T, hs chan error) error {
		t.Helper()
		select {
		case err := <-hs:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("no connection reached the server")
		}
		return nil
	}

	t.Run("the CA and the server name verify the server", func(t *testing.T) {
		addr, hs := fakePostgres(t, pki, false, false)
		connect(t, url(addr, "prefer"), kafkaconn.TLS{CAFile: pki.caFile, ServerName: "db.test"})
		if err := waitHandshake(t, hs); err != nil {
			t.Fatalf("handshake: %v", err)
		}
	})
	t.Run("a certificate of another name is refused", func(t *testing.T) {
		addr, hs := fakePostgres(t, pki, false, false)
		err := connect(t, url(addr, "require"), kafkaconn.TLS{CAFile: pki.caFile}) // the host is 127.0.0.1
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("connect: %v; want a certificate error", err)
		}
		if err := waitHandshake(t, hs); err == nil {
			t.Fatal("the handshake succeeded with a certificate for db.test at 127.0.0.1")
		}
	})
	t.Run("a certificate of another CA is refused", func(t *testing.T) {
		addr, hs := fakePostgres(t, pki, false, false)
		err := connect(t, url(addr, "prefer"), kafkaconn.TLS{Enabled: true, ServerName: "db.test"}) // the system's roots
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("connect: %v; want a certificate error", err)
		}
		if err := waitHandshake(t, hs); err == nil {
			t.Fatal("the handshake succeeded with a certificate of an unknown CA")
		}
	})
	t.Run("mutual TLS", func(t *testing.T) {
		addr, hs := fakePostgres(t, pki, true, false)
		connect(t, url(addr, "verify-ca"), kafkaconn.TLS{CAFile: pki.caFile, ServerName: "db.test", CertFile: pki.clientCert, KeyFile: pki.clientKey})
		if err := waitHandshake(t, hs); err != nil {
			t.Fatalf("handshake: %v", err)
		}
	})
	t.Run("no plaintext fallback", func(t *testing.T) {
		addr, hs := fakePostgres(t, pki, false, true)
		err := connect(t, url(addr, "prefer"), kafkaconn.TLS{CAFile: pki.caFile, ServerName: "db.test"})
		if err == nil {
			t.Fatal("connected without TLS")
		}
		waitHandshake(t, hs)
		select {
		case err := <-hs:
			t.Fatalf("a second connection: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
	})
}

// TestApplyPostgresTLS: what the -postgres-tls settings make of the URL's
// TLS configuration.
func TestApplyPostgresTLS(t *testing.T) {
	pki := newTestPKI(t)
	parse := func(t *testing.T, url string) *pgconn.Config {
		t.Helper()
		pc, err := parsePostgresURL(url)
		if err != nil {
			t.Fatal(err)
		}
		return &pc.ConnConfig.Config
	}

	// Without a setting, the URL decides: sslmode=prefer tries TLS without
	// verification, then plaintext.
	cc := parse(t, "postgres://u@db.example/x?sslmode=prefer")
	if err := applyPostgresTLS(cc, kafkaconn.TLS{}); err != nil {
		t.Fatal(err)
	}
	if cc.TLSConfig == nil || !cc.TLSConfig.InsecureSkipVerify || len(cc.Fallbacks) != 1 || cc.Fallbacks[0].TLSConfig != nil {
		t.Fatalf("the URL's sslmode=prefer changed: %+v, fallbacks %+v", cc.TLSConfig, cc.Fallbacks)
	}

	// Two hosts, sslmode=allow (plaintext first): one verified TLS attempt
	// per host, each checking its own name.
	cc = parse(t, "postgres://u@db1.example:5432,db2.example:5433/x?sslmode=allow")
	if err := applyPostgresTLS(cc, kafkaconn.TLS{Enabled: true}); err != nil {
		t.Fatal(err)
	}
	if cc.TLSConfig == nil || cc.TLSConfig.InsecureSkipVerify || cc.TLSConfig.ServerName != "db1.example" || cc.TLSConfig.MinVersion != tls.VersionTLS12 ||
		len(cc.Fallbacks) != 1 || cc.Fallbacks[0].Host != "db2.example" || cc.Fallbacks[0].Port != 5433 ||
		cc.Fallbacks[0].TLSConfig == nil || cc.Fallbacks[0].TLSConfig.ServerName != "db2.example" {
		t.Fatalf("two hosts: %+v, fallbacks %+v", cc.TLSConfig, cc.Fallbacks)
	}

	// The URL's sslrootcert stays the roots without -postgres-tls-ca, and
	// its verify-ca becomes a verification of the name too.
	cc = parse(t, "postgres://u@db.example/x?sslmode=verify-ca&sslrootcert="+pki.caFile)
	if err := applyPostgresTLS(cc, kafkaconn.TLS{CertFile: pki.clientCert, KeyFile: pki.clientKey}); err != nil {
		t.Fatal(err)
	}
	if c := cc.TLSConfig; c.RootCAs == nil || !c.RootCAs.Equal(pki.ca) || c.InsecureSkipVerify || c.VerifyPeerCertificate != nil ||
		c.ServerName != "db.example" || len(c.Certificates) != 1 {
		t.Fatalf("verify-ca with a client certificate: %+v", c)
	}

	// -postgres-tls-insecure-skip-verify, for tests.
	cc = parse(t, "postgres://u@db.example/x")
	if err := applyPostgresTLS(cc, kafkaconn.TLS{InsecureSkipVerify: true, ServerName: "sni.example"}); err != nil {
		t.Fatal(err)
	}
	if c := cc.TLSConfig; !c.InsecureSkipVerify || c.ServerName != "sni.example" || len(cc.Fallbacks) != 0 {
		t.Fatalf("insecure: %+v, fallbacks %+v", c, cc.Fallbacks)
	}

	for _, tc := range []struct {
		url  string
		tls  kafkaconn.TLS
		want string
	}{
		{"postgres://u@db.example/x?sslmode=disable", kafkaconn.TLS{Enabled: true}, "a URL that rules TLS out (sslmode=disable)"},
		{"host=/run/postgresql user=u dbname=x", kafkaconn.TLS{Enabled: true}, "the Unix socket /run/postgresql: PostgreSQL uses no TLS on Unix sockets"},
		{"postgres://u@db.example/x", kafkaconn.TLS{CAFile: "/no/ca.pem"}, "-postgres-tls-ca: open /no/ca.pem"},
		{"postgres://u@db.example/x", kafkaconn.TLS{CAFile: pki.clientKey}, "no PEM certificate in it"},
		{"postgres://u@db.example/x", kafkaconn.TLS{CertFile: pki.clientCert, KeyFile: pki.caFile}, "-postgres-tls-cert " + pki.clientCert + " and -postgres-tls-key"},
	} {
		err := applyPostgresTLS(parse(t, tc.url), tc.tls)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s with %+v: %v; want %q", tc.url, tc.tls, err, tc.want)
		}
	}
}

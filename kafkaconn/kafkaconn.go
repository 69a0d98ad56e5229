// Package kafkaconn turns the settings of a connection to a Kafka cluster
// (seed brokers, TLS, SASL) into franz-go client options. It is the one
// definition the sidecar's flags, the example and applications share: every
// constructor of snaplog takes franz-go options (log.KafkaClient,
// snapshots.KafkaClient, snapshotter.KafkaClient), and Config.Opts gives
// them for a secured cluster.
//
//	conn := kafkaconn.Config{
//		Brokers: []string{"b-1.example:9096"},
//		TLS:     kafkaconn.TLS{CAFile: "/etc/kafka/ca.pem"},
//		SASL:    kafkaconn.SASL{Mechanism: kafkaconn.ScramSHA512, Username: "orders", PasswordFile: "/run/secrets/kafka"},
//	}
//	opts, err := conn.Opts()
//	...
//	events, err := log.NewKafka(log.KafkaClient(opts...))
//
// Validate reports every problem of a Config at once, naming the setting;
// String describes a Config without its secrets, for logs.
package kafkaconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/aws"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// SASL mechanisms, as Kafka names them.
const (
	Plain       = "PLAIN"
	ScramSHA256 = "SCRAM-SHA-256"
	ScramSHA512 = "SCRAM-SHA-512"
	OAuthBearer = "OAUTHBEARER"
	AWSMSKIAM   = "AWS_MSK_IAM"
)

// Mechanisms lists the SASL mechanisms Config supports.
var Mechanisms = []string{Plain, ScramSHA256, ScramSHA512, OAuthBearer, AWSMSKIAM}

// Config is a connection to a Kafka cluster.
type Config struct {
	// Brokers are the seed brokers, host:port. Required.
	Brokers []string
	TLS     TLS
	SASL    SASL
	// DialTimeout bounds each connection attempt, the TLS handshake
	// included. Zero means franz-go's default (10 s).
	DialTimeout time.Duration
}

// TLS is the TLS of a connection. It is on when Enabled or any other field
// is set.
type TLS struct {
	Enabled bool
	// CAFile is a PEM file of the certificates that verify the brokers'.
	// Empty means the system's roots.
	CAFile string
	// CertFile and KeyFile are the client's PEM certificate and key, for
	// mutual TLS; both or neither.
	CertFile, KeyFile string
	// ServerName is the name the brokers' certificates must have, when it
	// is not the host of the broker address.
	ServerName string
	// InsecureSkipVerify accepts any certificate the brokers present. Only
	// for tests; never set by default, and refused together with CAFile.
	InsecureSkipVerify bool
}

// On reports whether the connection uses TLS.
func (t TLS) On() bool {
	return t.Enabled || t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != "" || t.InsecureSkipVerify
}

// SASL is the authentication of a connection. An empty Mechanism is none.
type SASL struct {
	// Mechanism is one of Mechanisms.
	Mechanism string
	// Username, and Password or PasswordFile (a file whose first line is
	// the password, read when Opts is called): PLAIN and SCRAM.
	Username, Password, PasswordFile string
	// TokenFile is a file holding an OAuth bearer token, read at each
	// authentication so that a rotated token is picked up: OAUTHBEARER.
	TokenFile string
	// AccessKey, SecretKey and SessionToken are AWS credentials:
	// AWS_MSK_IAM. Empty, they are read from the environment variables
	// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN at each
	// authentication.
	AccessKey, SecretKey, SessionToken string
}

// Validate reports every problem of the config, each naming its setting.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(c.Brokers) == 0 {
		add("brokers: none given")
	}
	for _, b := range c.Brokers {
		if _, port, err := net.SplitHostPort(b); err != nil || port == "" {
			add("brokers: %q is not host:port", b)
		}
	}
	if c.DialTimeout < 0 {
		add("dial timeout: %s is negative", c.DialTimeout)
	}
	t := c.TLS
	if (t.CertFile == "") != (t.KeyFile == "") {
		add("tls: a client certificate needs both its cert file and its key file")
	}
	if t.InsecureSkipVerify && t.CAFile != "" {
		add("tls: insecure skip verify and a CA file: the CA would not be used")
	}
	for _, f := range []struct{ name, path string }{{"tls: CA file", t.CAFile}, {"tls: cert file", t.CertFile}, {"tls: key file", t.KeyFile}} {
		if f.path != "" {
			if _, err := os.Stat(f.path); err != nil {
				add("%s: %v", f.name, err)
			}
		}
	}
	s := c.SASL
	switch s.Mechanism {
	case "":
		if s.Username != "" || s.Password != "" || s.PasswordFile != "" || s.TokenFile != "" || s.AccessKey != "" || s.SecretKey != "" || s.SessionToken != "" {
			add("sasl: credentials given without a mechanism (one of %s)", strings.Join(Mechanisms, ", "))
		}
	case Plain, ScramSHA256, ScramSHA512:
		if s.Username == "" {
			add("sasl %s: no username", s.Mechanism)
		}
		switch {
		case s.Password == "" && s.PasswordFile == "":
			add("sasl %s: no password or password file", s.Mechanism)
		case s.Password != "" && s.PasswordFile != "":
			add("sasl %s: both a password and a password file", s.Mechanism)
		case s.PasswordFile != "":
			if _, err := os.Stat(s.PasswordFile); err != nil {
				add("sasl %s: password file: %v", s.Mechanism, err)
			}
		}
		if s.TokenFile != "" || s.AccessKey != "" || s.SecretKey != "" || s.SessionToken != "" {
			add("sasl %s: takes a username and password only", s.Mechanism)
		}
	case OAuthBearer:
		if s.TokenFile == "" {
			add("sasl %s: no token file", s.Mechanism)
		} else if _, err := os.Stat(s.TokenFile); err != nil {
			add("sasl %s: token file: %v", s.Mechanism, err)
		}
		if s.Username != "" || s.Password != "" || s.PasswordFile != "" || s.AccessKey != "" || s.SecretKey != "" {
			add("sasl %s: takes a token file only", s.Mechanism)
		}
	case AWSMSKIAM:
		if !t.On() {
			add("sasl %s: needs TLS (MSK's IAM listener is TLS only)", s.Mechanism)
		}
		if (s.AccessKey == "") != (s.SecretKey == "") {
			add("sasl %s: an access key needs its secret key", s.Mechanism)
		}
		if s.Username != "" || s.Password != "" || s.PasswordFile != "" || s.TokenFile != "" {
			add("sasl %s: takes AWS credentials only", s.Mechanism)
		}
	default:
		add("sasl: unknown mechanism %q (want one of %s)", s.Mechanism, strings.Join(Mechanisms, ", "))
	}
	return errors.Join(errs...)
}

// Opts returns the franz-go options of the connection: the seed brokers,
// a TLS dialer, the SASL mechanism. It validates the config first, and
// reads the CA, certificate, key and password files.
func (c Config) Opts() ([]kgo.Opt, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("kafkaconn: %w", err)
	}
	opts := []kgo.Opt{kgo.SeedBrokers(c.Brokers...)}
	if c.DialTimeout != 0 {
		opts = append(opts, kgo.DialTimeout(c.DialTimeout))
	}
	if c.TLS.On() {
		cfg, err := c.TLS.config()
		if err != nil {
			return nil, fmt.Errorf("kafkaconn: tls: %w", err)
		}
		opts = append(opts, kgo.DialTLSConfig(cfg))
	}
	if c.SASL.Mechanism != "" {
		m, err := c.SASL.mechanism()
		if err != nil {
			return nil, fmt.Errorf("kafkaconn: sasl %s: %w", c.SASL.Mechanism, err)
		}
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

func (t TLS) config() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s: no PEM certificate in it", t.CAFile)
		}
		cfg.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate %s and key %s: %w", t.CertFile, t.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

func (s SASL) mechanism() (sasl.Mechanism, error) {
	switch s.Mechanism {
	case Plain, ScramSHA256, ScramSHA512:
		pass := s.Password
		if s.PasswordFile != "" {
			b, err := os.ReadFile(s.PasswordFile)
			if err != nil {
				return nil, fmt.Errorf("password file: %w", err)
			}
			pass, _, _ = strings.Cut(string(b), "\n")
			pass = strings.TrimRight(pass, "\r")
			if pass == "" {
				return nil, fmt.Errorf("password file %s: empty", s.PasswordFile)
			}
		}
		switch s.Mechanism {
		case Plain:
			return plain.Auth{User: s.Username, Pass: pass}.AsMechanism(), nil
		case ScramSHA256:
			return scram.Auth{User: s.Username, Pass: pass}.AsSha256Mechanism(), nil
		}
		return scram.Auth{User: s.Username, Pass: pass}.AsSha512Mechanism(), nil
	case OAuthBearer:
		path := s.TokenFile
		return oauth.Oauth(func(context.Context) (oauth.Auth, error) {
			b, err := os.ReadFile(path)
			if err != nil {
				return oauth.Auth{}, fmt.Errorf("token file: %w", err)
			}
			token := strings.TrimSpace(string(b))
			if token == "" {
				return oauth.Auth{}, fmt.Errorf("token file %s: empty", path)
			}
			return oauth.Auth{Token: token}, nil
		}), nil
	case AWSMSKIAM:
		fixed := s
		return aws.ManagedStreamingIAM(func(context.Context) (aws.Auth, error) {
			a := aws.Auth{AccessKey: fixed.AccessKey, SecretKey: fixed.SecretKey, SessionToken: fixed.SessionToken}
			if a.AccessKey == "" {
				a = aws.Auth{AccessKey: os.Getenv("AWS_ACCESS_KEY_ID"), SecretKey: os.Getenv("AWS_SECRET_ACCESS_KEY"), SessionToken: os.Getenv("AWS_SESSION_TOKEN")}
			}
			if a.AccessKey == "" || a.SecretKey == "" {
				return aws.Auth{}, errors.New("no AWS credentials: set them, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
			}
			return a, nil
		}), nil
	}
	return nil, fmt.Errorf("unknown mechanism %q", s.Mechanism)
}

// String describes the connection without its secrets: the brokers, the
// TLS files and server name, the SASL mechanism and user.
func (c Config) String() string {
	parts := []string{"brokers=" + strings.Join(c.Brokers, ",")}
	if c.TLS.On() {
		var t []string
		for _, kv := range [][2]string{{"ca", c.TLS.CAFile}, {"cert", c.TLS.CertFile}, {"key", c.TLS.KeyFile}, {"server-name", c.TLS.ServerName}} {
			if kv[1] != "" {
				t = append(t, kv[0]+"="+kv[1])
			}
		}
		if c.TLS.InsecureSkipVerify {
			t = append(t, "insecure-skip-verify")
		}
		parts = append(parts, "tls("+strings.Join(t, " ")+")")
	}
	if m := c.SASL.Mechanism; m != "" {
		var s []string
		if c.SASL.Username != "" {
			s = append(s, "user="+c.SASL.Username)
		}
		if c.SASL.PasswordFile != "" {
			s = append(s, "password-file="+c.SASL.PasswordFile)
		}
		if c.SASL.TokenFile != "" {
			s = append(s, "token-file="+c.SASL.TokenFile)
		}
		parts = append(parts, "sasl="+m+"("+strings.Join(s, " ")+")")
	}
	return strings.Join(parts, " ")
}

// Known reports whether mechanism is one of Mechanisms.
func Known(mechanism string) bool { return slices.Contains(Mechanisms, mechanism) }

package pgtest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestDecide: a URL is always used; without one, CI fails the test and
// anything else skips it.
func TestDecide(t *testing.T) {
	for _, tc := range []struct {
		url, ci string
		want    decision
	}{
		{"postgres://127.0.0.1:55432/x", "", useEnv},
		{"postgres://127.0.0.1:55432/x", "true", useEnv},
		{"", "true", failTest},
		{"", "1", failTest},
		{"", "yes", failTest},
		{"", "TRUE", failTest},
		{"", "", skipTest},
		{"  ", " ", skipTest},
		{"", "false", skipTest},
		{"", "0", skipTest},
	} {
		if got := decide(tc.url, tc.ci); got != tc.want {
			t.Errorf("decide(%q, CI=%q) = %d, want %d", tc.url, tc.ci, got, tc.want)
		}
	}
}

func TestRedact(t *testing.T) {
	if got := redact("postgres://u:secret@h:1/d"); got != "postgres://u:***@h:1/d" {
		t.Errorf("redact: %s", got)
	}
}

// TestSchemaIsDroppedAtCleanup: a test's schema, and what it holds, is gone
// once the test ends.
func TestSchemaIsDroppedAtCleanup(t *testing.T) {
	pool := Pool(t)
	var name string
	t.Run("user", func(t *testing.T) {
		name = Schema(t)
		if _, err := pool.Exec(t.Context(), "CREATE SCHEMA "+pgx.Identifier{name}.Sanitize()+"; CREATE TABLE "+
			pgx.Identifier{name, "t"}.Sanitize()+" (x int)"); err != nil {
			t.Fatal(err)
		}
	})
	var exists bool
	if err := pool.QueryRow(context.Background(), "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", name).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Fatalf("schema %s still exists after its test ended", name)
	}
}

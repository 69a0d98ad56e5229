package aggregate_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/snaplog/snaplog/aggregate"
)

func TestRegistry(t *testing.T) {
	r := accountRegistry(t)
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"name taken", aggregate.Register[Withdrawn](r, "Opened"), "name \"Opened\" is taken"},
		{"type taken", aggregate.Register[Opened](r, "AccountOpened"), "registered as \"Opened\""},
		{"pointer", r.Register("P", &Opened{}), "is a pointer"},
		{"empty name", r.Register("", Opened{}), "empty name"},
		{"nil", r.Register("N", nil), "nil prototype"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to say %q", tc.err, tc.want)
			}
		})
	}
	if err := aggregate.Register[Opened](r, "Opened"); !errors.Is(err, aggregate.ErrDuplicateEvent) {
		t.Fatalf("duplicate: %v", err)
	}

	_, err := r.Decode("Closed", "", []byte(`{}`))
	var ue *aggregate.UnknownEventError
	if !errors.As(err, &ue) || !errors.Is(err, aggregate.ErrUnknownEvent) {
		t.Fatalf("unknown name: %v", err)
	}
	if strings.Join(ue.Known, ",") != "Deposited,Opened,Withdrawn" || !strings.Contains(err.Error(), "Deposited, Opened, Withdrawn") {
		t.Fatalf("unknown name error does not list the known names: %v", err)
	}
	type Other struct{}
	if _, err := r.NameOf(Other{}); !errors.Is(err, aggregate.ErrUnknownEvent) {
		t.Fatalf("NameOf unregistered: %v", err)
	}

	name, payload, err := r.Encode(&Deposited{Amount: 7})
	if err != nil || name != "Deposited" || string(payload) != `{"amount":7}` {
		t.Fatalf("Encode = %q %s %v", name, payload, err)
	}
	v, err := r.Decode("Deposited", "application/json", payload)
	if err != nil || v != (Deposited{Amount: 7}) {
		t.Fatalf("Decode = %#v %v", v, err)
	}
	if _, err := r.Decode("Deposited", "application/avro", payload); err == nil || !strings.Contains(err.Error(), "content type") {
		t.Fatalf("wrong content type: %v", err)
	}
	if _, err := r.Decode("Deposited", "", []byte(`{"amount":"x"}`)); err == nil || !strings.Contains(err.Error(), "Deposited") {
		t.Fatalf("bad payload: %v", err)
	}
}

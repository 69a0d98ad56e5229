package pyfmt

import (
	"fmt"
	"math"
	"slices"
	"testing"
	"time"
)

func TestFloat(t *testing.T) {
	for _, tt := range []struct {
		in   float64
		want string
	}{
		{0, "0.0"},
		{10, "10.0"},
		{99.99, "99.99"},
		{1.0 / 3, "0.3333333333333333"},
		{-2.5, "-2.5"},
		{1e16, "1e+16"},
		{1.5e-05, "1.5e-05"},
		{0.0001, "0.0001"},
		{math.NaN(), "nan"},
		{math.Inf(1), "inf"},
		{math.Inf(-1), "-inf"},
	} {
		t.Run(fmt.Sprint(tt.in), func(t *testing.T) {
			if got := Float(tt.in); got != tt.want {
				t.Errorf("Float(%v) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestTime(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   time.Time
		want string
	}{
		{"microseconds", time.Date(2024, 1, 15, 10, 30, 45, 123456789, time.UTC), "2024-01-15 10:30:45.123456+00:00"},
		{"one microsecond", time.Date(2024, 1, 15, 10, 30, 45, 1000, time.UTC), "2024-01-15 10:30:45.000001+00:00"},
		{"below a microsecond", time.Date(2024, 1, 15, 10, 30, 45, 999, time.UTC), "2024-01-15 10:30:45+00:00"},
		{"other zone", time.Date(2024, 1, 15, 11, 30, 45, 0, time.FixedZone("CET", 3600)), "2024-01-15 10:30:45+00:00"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := Time(tt.in); got != tt.want {
				t.Errorf("Time(%v) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestQuote(t *testing.T) {
	for _, tt := range []struct {
		in, want string
	}{
		{"", "''"},
		{"abc", "'abc'"},
		{"it's", `"it's"`},
		{`say "hi"`, `'say "hi"'`},
		{`a'b"c`, `'a\'b"c'`},
		{`back\slash`, `'back\\slash'`},
		{"a\tb\nc\r", `'a\tb\nc\r'`},
	} {
		t.Run(tt.in, func(t *testing.T) {
			if got := Quote(tt.in); got != tt.want {
				t.Errorf("Quote(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestReprAndStr(t *testing.T) {
	at := time.Date(2024, 1, 15, 10, 30, 45, 0, time.UTC)
	for _, tt := range []struct {
		name      string
		in        any
		repr, str string
	}{
		{"nil", nil, "None", "None"},
		{"true", true, "True", "True"},
		{"false", false, "False", "False"},
		{"string", "it's", `"it's"`, "it's"},
		{"both quotes", `a'b"c`, `'a\'b"c'`, `a'b"c`},
		{"int32", int32(2), "2", "2"},
		{"int64", int64(-7), "-7", "-7"},
		{"float64", 10.0, "10.0", "10.0"},
		{"float32", float32(0.5), "0.5", "0.5"},
		{"time", at, "datetime('2024-01-15 10:30:45+00:00')", "datetime('2024-01-15 10:30:45+00:00')"},
		{"bytes", []byte("ab'"), `b"ab'"`, `b"ab'"`},
		{"list", []any{"a", 0.0, nil}, "['a', 0.0, None]", "['a', 0.0, None]"},
		{"map", map[string]any{"b": int64(1), "a": "x"}, "{'a': 'x', 'b': 1}", "{'a': 'x', 'b': 1}"},
		{"nested", []any{map[string]any{"k": []any{true}}}, "[{'k': [True]}]", "[{'k': [True]}]"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := Repr(tt.in); got != tt.repr {
				t.Errorf("Repr(%#v) = %q, want %q", tt.in, got, tt.repr)
			}
			if got := Str(tt.in); got != tt.str {
				t.Errorf("Str(%#v) = %q, want %q", tt.in, got, tt.str)
			}
		})
	}
}

func TestBoolAndStrings(t *testing.T) {
	if Bool(true) != "True" || Bool(false) != "False" {
		t.Errorf("Bool: %q, %q", Bool(true), Bool(false))
	}
	for _, tt := range []struct {
		in   []string
		want string
	}{
		{nil, "[]"},
		{[]string{"order_id"}, "['order_id']"},
		{[]string{"a", "it's"}, `['a', "it's"]`},
	} {
		t.Run(fmt.Sprint(tt.in), func(t *testing.T) {
			if got := Strings(tt.in); got != tt.want {
				t.Errorf("Strings(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestDict(t *testing.T) {
	item := map[string]any{"product_name": "W", "product_id": "p", "quantity": int32(1)}
	itemOrder := []string{"product_id", "product_name", "quantity"}
	for _, tt := range []struct {
		name  string
		rec   map[string]any
		order []string
		shown int
		want  string
	}{
		{"first two", item, itemOrder, 2, "{'product_id': 'p', 'product_name': 'W', ...}"},
		{"all", item, itemOrder, 3, "{'product_id': 'p', 'product_name': 'W', 'quantity': 1}"},
		{"more than there are", item, itemOrder, 10, "{'product_id': 'p', 'product_name': 'W', 'quantity': 1}"},
		{"none", item, itemOrder, 0, "{...}"},
		{"sorted without an order", item, nil, 3, "{'product_id': 'p', 'product_name': 'W', 'quantity': 1}"},
		{"partial order", item, []string{"quantity"}, 3, "{'quantity': 1, 'product_id': 'p', 'product_name': 'W'}"},
		{"empty", map[string]any{}, itemOrder, 2, "{}"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := Dict(tt.rec, tt.order, tt.shown); got != tt.want {
				t.Errorf("Dict = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestOrderedKeys(t *testing.T) {
	rec := map[string]any{"d": 1, "c": 2, "b": 3, "a": 4}
	for _, tt := range []struct {
		name  string
		order []string
		want  []string
	}{
		{"no order", nil, []string{"a", "b", "c", "d"}},
		{"full order", []string{"d", "b", "c", "a"}, []string{"d", "b", "c", "a"}},
		{"partial order, the rest sorted", []string{"c"}, []string{"c", "a", "b", "d"}},
		{"order names missing keys", []string{"x", "b", "y"}, []string{"b", "a", "c", "d"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := OrderedKeys(rec, tt.order); !slices.Equal(got, tt.want) {
				t.Errorf("OrderedKeys(%v) = %q, want %q", tt.order, got, tt.want)
			}
		})
	}
}

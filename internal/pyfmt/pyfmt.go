package pyfmt

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Bool formats b as Python does: True or False.
func Bool(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

// Time formats t as Python's str() of a UTC datetime does:
// 2024-01-15 10:30:45.123456+00:00, without the fraction when it is zero.
// t is converted to UTC and truncated to microseconds, Python's precision.
func Time(t time.Time) string {
	t = t.UTC()
	s := t.Format(time.DateTime)
	if us := t.Nanosecond() / 1000; us != 0 {
		s += fmt.Sprintf(".%06d", us)
	}
	return s + "+00:00"
}

// Float formats f as Python's repr() of a float does: the shortest form
// that reads back as f, with ".0" on integral values, and an exponent below
// 1e-4 and from 1e16 on; nan, inf and -inf for the special values.
func Float(f float64) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	if a := math.Abs(f); a >= 1e16 || (a != 0 && a < 1e-4) {
		return strconv.FormatFloat(f, 'e', -1, 64)
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}

// Quote formats s as Python's repr() of a str does: in single quotes,
// unless s holds a single quote and no double quote, with backslashes, the
// quote, newlines, carriage returns and tabs escaped.
func Quote(s string) string {
	q := "'"
	if strings.Contains(s, "'") && !strings.Contains(s, `"`) {
		q = `"`
	}
	r := strings.NewReplacer(`\`, `\\`, q, `\`+q, "\n", `\n`, "\r", `\r`, "\t", `\t`)
	return q + r.Replace(s) + q
}

// Str formats a record value as Python's str() does: a string as it is,
// anything else as Repr.
func Str(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return Repr(v)
}

// Repr formats a record value as Python's repr() does. A time.Time prints
// as datetime('…') with Time's text, []byte as a bytes literal, a map as
// Dict with its keys sorted, and a type Python has no counterpart for as
// fmt.Sprint prints it (the integers among them).
func Repr(v any) string {
	switch v := v.(type) {
	case nil:
		return "None"
	case string:
		return Quote(v)
	case bool:
		return Bool(v)
	case float64:
		return Float(v)
	case float32:
		return Float(float64(v))
	case time.Time:
		return "datetime(" + Quote(Time(v)) + ")"
	case []byte:
		return "b" + Quote(string(v))
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = Repr(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case map[string]any:
		return Dict(v, nil, len(v))
	}
	return fmt.Sprint(v)
}

// Strings formats a list of strings as Python's repr() of a list does.
func Strings(ss []string) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = Quote(s)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// Dict formats rec as Python's repr() of a dict does, its keys in the order
// of OrderedKeys(rec, order). It shows at most shown entries, then "..."
// when it leaves some out.
func Dict(rec map[string]any, order []string, shown int) string {
	keys := OrderedKeys(rec, order)
	shown = max(0, min(shown, len(keys)))
	parts := make([]string, 0, shown+1)
	for _, k := range keys[:shown] {
		parts = append(parts, Quote(k)+": "+Repr(rec[k]))
	}
	if shown < len(keys) {
		parts = append(parts, "...")
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// OrderedKeys returns the keys of rec that are in order, in that order,
// then the others, sorted.
func OrderedKeys(rec map[string]any, order []string) []string {
	keys := make([]string, 0, len(rec))
	for _, k := range order {
		if _, ok := rec[k]; ok {
			keys = append(keys, k)
		}
	}
	var rest []string
	for k := range rec {
		if !slices.Contains(order, k) {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	return append(keys, rest...)
}

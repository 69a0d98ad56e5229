package main

// inspect prints values as the seed's inspection example, a Python
// program, prints them: True/False, None, 0.0, quoted strings in lists and
// dicts, and datetimes as Python's str(datetime) writes them.

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// orderedKeys returns the keys of rec that are in order, in that order, then
// the others, sorted.
func orderedKeys(rec map[string]any, order []string) []string {
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

func pyBool(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

// pyTime formats t as Python's str() of a UTC datetime does:
// 2024-01-15 10:30:45.123456+00:00, without the fraction when it is zero.
func pyTime(t time.Time) string {
	t = t.UTC()
	s := t.Format(time.DateTime)
	if us := t.Nanosecond() / 1000; us != 0 {
		s += fmt.Sprintf(".%06d", us)
	}
	return s + "+00:00"
}

// pyFloat formats f as Python's repr() of a float does: the shortest form
// that reads back as f, with ".0" on integral values and an exponent below
// 1e-4 and from 1e16 on.
func pyFloat(f float64) string {
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

// pyQuote formats s as Python's repr() of a str does: in single quotes,
// unless s holds a single quote and no double quote.
func pyQuote(s string) string {
	q := "'"
	if strings.Contains(s, "'") && !strings.Contains(s, `"`) {
		q = `"`
	}
	r := strings.NewReplacer(`\`, `\\`, q, `\`+q, "\n", `\n`, "\r", `\r`, "\t", `\t`)
	return q + r.Replace(s) + q
}

// pyStr formats a record value as Python's str() would.
func pyStr(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return pyRepr(v)
}

// pyRepr formats a record value as Python's repr() would.
func pyRepr(v any) string {
	switch v := v.(type) {
	case nil:
		return "None"
	case string:
		return pyQuote(v)
	case bool:
		return pyBool(v)
	case float64:
		return pyFloat(v)
	case float32:
		return pyFloat(float64(v))
	case time.Time:
		return "datetime(" + pyQuote(pyTime(v)) + ")"
	case []byte:
		return "b" + pyQuote(string(v))
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = pyRepr(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case map[string]any:
		return pyDict(v, nil, len(v))
	}
	return fmt.Sprint(v) // integers
}

// pyDict formats rec as a Python dict: the keys in order first (see
// orderedKeys), at most shown of them, then "..." if any are left out.
func pyDict(rec map[string]any, order []string, shown int) string {
	keys := orderedKeys(rec, order)
	parts := make([]string, 0, min(shown, len(keys))+1)
	for _, k := range keys[:min(shown, len(keys))] {
		parts = append(parts, pyQuote(k)+": "+pyRepr(rec[k]))
	}
	if shown < len(keys) {
		parts = append(parts, "...")
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

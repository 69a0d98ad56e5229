package aggregate_test

import (
	"os"
	"strings"
	"testing"
)

// TestReadmeShowsTheExample: the README's "Using it" snippet is Example, as
// go test runs it.
func TestReadmeShowsTheExample(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "## Using it\n")
	_, block, ok2 := strings.Cut(section, "```go\n")
	block, _, ok3 := strings.Cut(block, "```\n")
	_, code, ok4 := strings.Cut(string(src), "\ntype Credited")
	if !ok || !ok2 || !ok3 || !ok4 {
		t.Fatal("README.md has no Go block under \"## Using it\", or example_test.go no type Credited")
	}
	if block != "type Credited"+code {
		t.Fatalf("the README's \"Using it\" snippet is not aggregate/example_test.go from type Credited on; copy it over")
	}
}

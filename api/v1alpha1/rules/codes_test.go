package rules

import (
	"go/ast"
	"go/parser"
	"go/token"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Codes lists every code constant: a constant added without it would be
// missing from the classification table's check.
func TestCodesListsEveryCodeConstant(t *testing.T) {
	file, err := parser.ParseFile(token.NewFileSet(), "codes.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, decl := range file.Decls {
		gen, ok := decl.(*ast.GenDecl)
		if !ok || gen.Tok != token.CONST {
			continue
		}
		for _, spec := range gen.Specs {
			value := spec.(*ast.ValueSpec)
			for i, name := range value.Names {
				if !strings.HasPrefix(name.Name, "Code") || name.Name == "CodeNone" {
					continue
				}
				found++
				literal, ok := value.Values[i].(*ast.BasicLit)
				if !ok {
					t.Fatalf("%s is not a literal", name.Name)
				}
				code, _ := strconv.Atoi(literal.Value)
				if !slices.Contains(Codes, code) {
					t.Errorf("%s (%d) is missing from Codes", name.Name, code)
				}
			}
		}
	}
	if found != len(Codes) {
		t.Errorf("%d code constants, Codes lists %d", found, len(Codes))
	}
}

package intern

import (
	"fmt"
	"testing"
	"unsafe"
)

func TestTableSharesWhatRepeats(t *testing.T) {
	table := NewTable[string, string](8)
	a, b := string([]byte("team-a")), string([]byte("team-a"))
	if unsafe.StringData(a) == unsafe.StringData(b) {
		t.Fatal("the test's two strings must be separate copies")
	}
	a = table.Share(a, a)
	b = table.Share(b, b)
	if unsafe.StringData(a) != unsafe.StringData(b) {
		t.Fatal("a repeated string is not shared")
	}
}

// The table stays bounded however many different values pass through,
// and what repeats is shared again once it has started afresh.
func TestTableStaysBounded(t *testing.T) {
	const limit = 16
	table := NewTable[string, string](limit)
	for i := range 3 * limit {
		id := fmt.Sprintf("%032x", i)
		table.Share(id, id)
		if table.Len() > limit {
			t.Fatalf("%d values held after %d, want at most %d", table.Len(), i+1, limit)
		}
	}
	a, b := string([]byte("team-a")), string([]byte("team-a"))
	a = table.Share(a, a)
	b = table.Share(b, b)
	if unsafe.StringData(a) != unsafe.StringData(b) {
		t.Fatal("a repeated string is not shared after the table started afresh")
	}
}

// Flags of one value share one copy, which holds that value.
func TestFlagSharesEachValue(t *testing.T) {
	yes, alsoYes, no := true, true, false
	if Flag(nil) != nil {
		t.Error("no flag became one")
	}
	if Flag(&yes) != Flag(&alsoYes) || !*Flag(&yes) {
		t.Error("two true flags are not one shared true")
	}
	if Flag(&no) == Flag(&yes) || *Flag(&no) {
		t.Error("a false flag is not the shared false")
	}
}

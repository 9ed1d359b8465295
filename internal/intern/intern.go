// Package intern keeps one copy of the values that many cached objects
// repeat, so that each object refers to that copy instead of holding its
// own: a cache of thousands of applications repeats the same few
// namespaces, zones, protocols and settings over and over.
package intern

// Table holds one shared value per key, at most limit of them, and starts
// afresh when full: values seen once (an ID) only pass through, and what
// repeats is learnt again at once. Its owner locks: a Table is not safe
// for concurrent use.
type Table[K comparable, V any] struct {
	limit  int
	values map[K]V
}

// NewTable returns an empty table that holds at most limit values.
func NewTable[K comparable, V any](limit int) *Table[K, V] {
	return &Table[K, V]{limit: max(limit, 1), values: make(map[K]V)}
}

// Share returns the table's value for key, or makes value it.
func (t *Table[K, V]) Share(key K, value V) V {
	if shared, ok := t.values[key]; ok {
		return shared
	}
	if len(t.values) >= t.limit {
		clear(t.values)
	}
	t.values[key] = value
	return value
}

// Get returns the table's value for key, if it holds one.
func (t *Table[K, V]) Get(key K) (V, bool) {
	value, ok := t.values[key]
	return value, ok
}

// Len is how many values the table holds.
func (t *Table[K, V]) Len() int { return len(t.values) }

// flags are the two values of a flag, which every holder of one shares.
var flags = [2]bool{false, true}

// Flag returns the shared copy of *flag's value (nil for nil): a flag is
// one byte, its pointer eight, and the allocation it points to sixteen.
// The copies are shared by every caller, so what they point to is never
// to be modified.
func Flag(flag *bool) *bool {
	if flag == nil {
		return nil
	}
	if *flag {
		return &flags[1]
	}
	return &flags[0]
}

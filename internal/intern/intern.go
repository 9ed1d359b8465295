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

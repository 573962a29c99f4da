package embed

// featureTable counts features by their 64-bit hash: an open-addressing
// table with linear probing that remembers the order in which features
// first occurred.
type featureTable struct {
	slots []slot   // a power of two long; key 0 marks a free slot
	order []uint32 // indexes of the used slots, in insertion order
}

type slot struct {
	key   uint64
	count uint32
	kind  uint8
}

func newFeatureTable(n int) featureTable {
	return featureTable{slots: make([]slot, n)}
}

// add counts n occurrences of the feature with hash key and returns its
// count so far.
func (t *featureTable) add(key uint64, kind uint8, n uint32) uint32 {
	key = max(key, 1) // 0 marks free slots
	if 2*(len(t.order)+1) > len(t.slots) {
		t.grow()
	}
	mask := uint64(len(t.slots) - 1)
	for i := key & mask; ; i = (i + 1) & mask {
		s := &t.slots[i]
		switch s.key {
		case key:
			s.count += n
			return s.count
		case 0:
			*s = slot{key: key, count: n, kind: kind}
			t.order = append(t.order, uint32(i))
			return n
		}
	}
}

// count returns how often the feature with hash key occurred.
func (t *featureTable) count(key uint64) uint32 {
	key = max(key, 1)
	mask := uint64(len(t.slots) - 1)
	for i := key & mask; ; i = (i + 1) & mask {
		switch t.slots[i].key {
		case key:
			return t.slots[i].count
		case 0:
			return 0
		}
	}
}

// grow doubles the table, keeping the insertion order.
func (t *featureTable) grow() {
	old, order := t.slots, t.order
	t.slots, t.order = make([]slot, 2*len(old)), make([]uint32, 0, 2*cap(order))
	mask := uint64(len(t.slots) - 1)
	for _, idx := range order {
		s := old[idx]
		i := s.key & mask
		for t.slots[i].key != 0 {
			i = (i + 1) & mask
		}
		t.slots[i] = s
		t.order = append(t.order, uint32(i))
	}
}

// reset empties the table in time proportional to what it holds.
func (t *featureTable) reset() {
	for _, idx := range t.order {
		t.slots[idx] = slot{}
	}
	t.order = t.order[:0]
}

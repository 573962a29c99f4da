package vector

// cand is a node and its similarity to the query.
type cand struct {
	score float32
	id    uint32
}

// better orders candidates: higher score first, then lower id, so that
// results do not depend on the order in which equal scores were found.
func better(a, b cand) bool {
	return a.score > b.score || (a.score == b.score && a.id < b.id)
}

// compareCand orders candidates best first for slices.SortFunc.
func compareCand(a, b cand) int {
	switch {
	case better(a, b):
		return -1
	case better(b, a):
		return 1
	}
	return 0
}

// maxHeap keeps the best candidate on top: the frontier of a search.
type maxHeap struct{ items []cand }

func (h *maxHeap) len() int  { return len(h.items) }
func (h *maxHeap) top() cand { return h.items[0] }
func (h *maxHeap) reset()    { h.items = h.items[:0] }

// The heaps compare with better written out, not passed as a function:
// a comparison through a function value is an indirect call per step,
// which the insertions' searches paid millions of times.

func (h *maxHeap) push(c cand) {
	h.items = append(h.items, c)
	items := h.items
	i := len(items) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !better(c, items[p]) {
			break
		}
		items[i] = items[p]
		i = p
	}
	items[i] = c
}

func (h *maxHeap) pop() cand {
	top := h.items[0]
	n := len(h.items) - 1
	x := h.items[n]
	h.items = h.items[:n]
	if n == 0 {
		return top
	}
	items := h.items
	i := 0
	for {
		c := 2*i + 1
		if c >= n {
			break
		}
		if c+1 < n && better(items[c+1], items[c]) {
			c++
		}
		if !better(items[c], x) {
			break
		}
		items[i] = items[c]
		i = c
	}
	items[i] = x
	return top
}

// minHeap keeps the worst candidate on top: the bounded result set of a
// search, whose top is the bar a new candidate must clear.
type minHeap struct{ items []cand }

func (h *minHeap) len() int  { return len(h.items) }
func (h *minHeap) top() cand { return h.items[0] }
func (h *minHeap) reset()    { h.items = h.items[:0] }

func (h *minHeap) push(c cand) {
	h.items = append(h.items, c)
	items := h.items
	i := len(items) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !better(items[p], c) {
			break
		}
		items[i] = items[p]
		i = p
	}
	items[i] = c
}

func (h *minHeap) pop() cand {
	top := h.items[0]
	n := len(h.items) - 1
	x := h.items[n]
	h.items = h.items[:n]
	if n > 0 {
		h.items[0] = x
		h.down()
	}
	return top
}

// down moves the top down to its place.
func (h *minHeap) down() {
	items := h.items
	n := len(items)
	x := items[0]
	i := 0
	for {
		c := 2*i + 1
		if c >= n {
			break
		}
		if c+1 < n && better(items[c], items[c+1]) {
			c++
		}
		if !better(x, items[c]) {
			break
		}
		items[i] = items[c]
		i = c
	}
	items[i] = x
}

// drainBest empties the heap into dst, best first, and returns dst.
func (h *minHeap) drainBest(dst []cand) []cand {
	n := len(h.items)
	if cap(dst) < n {
		dst = make([]cand, n)
	}
	dst = dst[:n]
	for i := n - 1; i >= 0; i-- {
		dst[i] = h.pop()
	}
	return dst
}

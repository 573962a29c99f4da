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

func (h *maxHeap) push(c cand) {
	h.items = append(h.items, c)
	siftUp(h.items, len(h.items)-1, better)
}

func (h *maxHeap) pop() cand {
	top := h.items[0]
	n := len(h.items) - 1
	h.items[0] = h.items[n]
	h.items = h.items[:n]
	siftDown(h.items, 0, better)
	return top
}

// minHeap keeps the worst candidate on top: the bounded result set of a
// search, whose top is the bar a new candidate must clear.
type minHeap struct{ items []cand }

func worse(a, b cand) bool { return better(b, a) }

func (h *minHeap) len() int  { return len(h.items) }
func (h *minHeap) top() cand { return h.items[0] }
func (h *minHeap) reset()    { h.items = h.items[:0] }

func (h *minHeap) push(c cand) {
	h.items = append(h.items, c)
	siftUp(h.items, len(h.items)-1, worse)
}

func (h *minHeap) pop() cand {
	top := h.items[0]
	n := len(h.items) - 1
	h.items[0] = h.items[n]
	h.items = h.items[:n]
	siftDown(h.items, 0, worse)
	return top
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

// siftUp moves items[i] up while it comes before its parent in the order.
func siftUp(items []cand, i int, before func(a, b cand) bool) {
	x := items[i]
	for i > 0 {
		p := (i - 1) / 2
		if !before(x, items[p]) {
			break
		}
		items[i] = items[p]
		i = p
	}
	items[i] = x
}

// siftDown moves items[i] down while a child comes before it in the order.
func siftDown(items []cand, i int, before func(a, b cand) bool) {
	n := len(items)
	if n == 0 {
		return
	}
	x := items[i]
	for {
		c := 2*i + 1
		if c >= n {
			break
		}
		if c+1 < n && before(items[c+1], items[c]) {
			c++
		}
		if !before(items[c], x) {
			break
		}
		items[i] = items[c]
		i = c
	}
	items[i] = x
}

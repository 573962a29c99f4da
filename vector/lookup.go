package vector

// Vector returns a copy of the vector stored under key, and whether the
// key's insertion has finished.
func (ix *Index) Vector(key uint32) ([]float32, bool) {
	ix.keyMu.Lock()
	id, ok := ix.ids[key]
	ix.keyMu.Unlock()
	if !ok {
		return nil, false
	}
	if _, _, ok := ix.finished(id); !ok {
		return nil, false
	}
	return append([]float32(nil), ix.vec(id)...), true
}

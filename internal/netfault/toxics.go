package netfault

import "github.com/Shopify/toxiproxy/v2/toxics"

// The toxics of Cut and Pause, registered with toxiproxy's toxics under names of their own.
const (
	cutToxicType   = "netfault_cut"
	pauseToxicType = "netfault_pause"
)

func init() {
	toxics.Register(cutToxicType, new(cutToxic))
	toxics.Register(pauseToxicType, new(pauseToxic))
}

// cutToxic drops every byte, as toxiproxy's timeout toxic with timeout 0 does, and its removal
// closes the connection as that one's does. It differs in one thing: once closed it keeps taking
// (and dropping) what the toxics before it send until they close too, where the timeout toxic
// leaves them blocked on a send no one receives. toxiproxy's removal of a toxic that closes its
// connection leaves the toxics before it running, and they close only when the connection's reader
// does, after its socket closed; a chunk that arrives in between would otherwise keep a goroutine
// (and the reader behind it) waiting for ever.
type cutToxic struct{}

// Pipe drops everything until the toxic is removed or the stream ends.
func (*cutToxic) Pipe(stub *toxics.ToxicStub) {
	for {
		select {
		case <-stub.Interrupt:
			return
		case c := <-stub.Input:
			if c == nil {
				stub.Close()
				return
			}
		}
	}
}

// Cleanup runs when the cut is removed: it closes the connection (the bytes dropped in the middle
// of its stream cannot be made up for) and drains the input until the toxics before it close.
func (*cutToxic) Cleanup(stub *toxics.ToxicStub) {
	stub.Close()
	go func() {
		for range stub.Input {
		}
	}()
}

// pauseToxic holds the stream: it reads nothing until it is removed, so the bytes wait in the
// channels before it, then in the sockets' buffers, then in the sender, and toxiproxy's removal of
// the toxic delivers them in order (a close waits behind them in the same way). It never holds a
// chunk itself, so nothing is lost when its connection closes while it holds.
type pauseToxic struct{}

// Pipe waits until the toxic is interrupted (removed).
func (*pauseToxic) Pipe(stub *toxics.ToxicStub) { <-stub.Interrupt }

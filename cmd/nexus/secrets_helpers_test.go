package main_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
)

// awaitEvent reads sub until an event matches, for at most within.
func awaitEvent(t *testing.T, sub nexus.Subscription, within time.Duration, what string, match func(typ string, data map[string]any) bool) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for {
		ev, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("no event %s within %v: %v", what, within, err)
		}
		var data map[string]any
		json.Unmarshal(ev.Data, &data)
		if match(ev.Type, data) {
			return data
		}
	}
}

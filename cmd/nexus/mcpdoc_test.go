package main_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The client snippets of docs/MCP.md cannot be run here (no MCP client
// is installed), so their shape is checked: every JSON block parses and
// names `nexus mcp` or the /mcp endpoint, and every `claude mcp add`
// line survives Claude Code's option parser, whose -e/--env and
// -H/--header take any number of values and so swallow a server name
// written after them.
func TestMCPDoc_ClientSnippets(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "..", "docs", "MCP.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(src)
	blocks := 0
	for _, block := range fencedBlocks(doc, "json") {
		if !strings.Contains(block, `"mcpServers"`) {
			continue // error bodies
		}
		var v struct {
			MCPServers map[string]map[string]any `json:"mcpServers"`
		}
		if err := json.Unmarshal([]byte(block), &v); err != nil {
			t.Errorf("invalid JSON block: %v\n%s", err, block)
			continue
		}
		blocks++
		checkNexusServer(t, v.MCPServers["nexus"], block)
	}
	if blocks < 5 {
		t.Errorf("%d client configuration blocks, want the 5 of Claude Code, Claude Desktop and Cursor", blocks)
	}
	adds := 0
	for _, line := range strings.Split(doc, "\n") {
		switch {
		case strings.HasPrefix(line, "claude mcp add-json "):
			adds++
			open, end := strings.Index(line, "'{"), strings.LastIndex(line, "}'")
			if open < 0 || end < open {
				t.Errorf("add-json without a quoted object: %s", line)
				continue
			}
			obj := strings.ReplaceAll(line[open+1:end+1], `'"$HOME"'`, "/home/me")
			var server map[string]any
			if err := json.Unmarshal([]byte(obj), &server); err != nil {
				t.Errorf("add-json object: %v\n%s", err, line)
			}
			checkNexusServer(t, server, line)
		case strings.HasPrefix(line, "claude mcp add "):
			adds++
			if name := claudeMCPAddName(strings.Fields(strings.TrimPrefix(line, "claude mcp add "))); name != "nexus" {
				t.Errorf("claude mcp add would name the server %q, not nexus: %s", name, line)
			}
		}
	}
	if adds < 4 {
		t.Errorf("%d claude mcp add commands, want the 4 of the Claude Code section", adds)
	}
}

// checkNexusServer checks one server entry: `nexus mcp` or /mcp.
func checkNexusServer(t *testing.T, server map[string]any, where string) {
	t.Helper()
	if url, ok := server["url"].(string); ok {
		if !strings.HasSuffix(url, "/mcp") {
			t.Errorf("url %q is not the /mcp endpoint: %s", url, where)
		}
		return
	}
	cmd, _ := server["command"].(string)
	args, _ := json.Marshal(server["args"])
	if filepath.Base(cmd) != "nexus" || string(args) != `["mcp"]` {
		t.Errorf("command %q args %s, want nexus [mcp]: %s", cmd, args, where)
	}
}

// claudeMCPAddName returns the server name `claude mcp add` parses from
// args (the line after `add`, split on spaces): the first operand, with
// -e/--env and -H/--header taking every word up to the next option, and
// the other options one value each.
func claudeMCPAddName(args []string) string {
	variadic := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return ""
		case a == "-e" || a == "--env" || a == "-H" || a == "--header":
			variadic = true
		case strings.HasPrefix(a, "-"):
			variadic = false
			if !strings.Contains(a, "=") {
				i++ // --scope user, --transport http
			}
		case !variadic:
			return a
		}
	}
	return ""
}

// fencedBlocks returns the contents of the ```lang blocks of a Markdown
// document.
func fencedBlocks(doc, lang string) []string {
	var out []string
	for rest := doc; ; {
		_, after, ok := strings.Cut(rest, "\n```"+lang+"\n")
		if !ok {
			return out
		}
		block, tail, _ := strings.Cut(after, "\n```")
		out = append(out, block)
		rest = tail
	}
}

package embed

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nexus-mem/nexus"
)

// Defaults of [OpenAIConfig] fields left at zero.
const (
	DefaultBatchSize       = 64
	DefaultTimeout         = 30 * time.Second
	DefaultMaxRetries      = 3
	DefaultRetryBase       = 250 * time.Millisecond
	DefaultRetryMax        = 20 * time.Second
	DefaultBreakerFailures = 5
	DefaultBreakerCooldown = 30 * time.Second
)

// OpenAIConfig configures an [OpenAI] embedder. Only BaseURL and Model are
// required; every other zero field takes its default.
type OpenAIConfig struct {
	// BaseURL locates the server: the host root ("http://localhost:11434"),
	// the API root ("https://api.openai.com/v1") or the endpoint itself
	// (".../v1/embeddings"). Requests go to <root>/v1/embeddings.
	BaseURL string
	// Model is sent with every request and is what [OpenAI.Model] returns.
	Model string
	// APIKey is sent as "Authorization: Bearer <key>"; empty sends no
	// Authorization header (Ollama, llama.cpp and vLLM need none by
	// default). It never appears in an error or a log.
	APIKey string
	// Dimension is the length of the model's vectors. 0 means unknown: it
	// is learned from the first response, or by [OpenAI.Probe].
	Dimension int
	// BatchSize is the most texts sent in one request; longer inputs are
	// split and sent one batch after another. Default 64.
	BatchSize int
	// Timeout bounds each HTTP request, including reading the response.
	// Default 30s.
	Timeout time.Duration
	// MaxRetries is how often a failed request is retried; 0 means the
	// default 3 and a negative number means never.
	MaxRetries int
	// RetryBase and RetryMax shape the backoff between retries: retry n
	// waits a random time up to min(RetryMax, RetryBase·2^(n-1)), or what
	// the server asked for in Retry-After, capped at RetryMax. Defaults
	// 250ms and 20s.
	RetryBase time.Duration
	RetryMax  time.Duration
	// BreakerFailures is how many requests in a row must fail for the
	// circuit breaker to open; BreakerCooldown is how long it stays open
	// before one request may probe the server again. Defaults 5 and 30s.
	BreakerFailures int
	BreakerCooldown time.Duration
	// HTTPClient sends the requests; nil means http.DefaultClient.
	HTTPClient *http.Client
	// Logger receives retries and breaker state changes; nil discards them.
	Logger *slog.Logger
}

// Environment variables read by [OpenAIConfigFromEnv].
const (
	EnvURL       = "NEXUS_EMBED_URL"
	EnvModel     = "NEXUS_EMBED_MODEL"
	EnvAPIKey    = "NEXUS_EMBED_API_KEY"
	EnvOpenAIKey = "OPENAI_API_KEY" // the fallback for EnvAPIKey
	EnvDimension = "NEXUS_EMBED_DIM"
)

// OpenAIConfigFromEnv returns a configuration from NEXUS_EMBED_URL,
// NEXUS_EMBED_MODEL, NEXUS_EMBED_API_KEY (or, if that is unset or empty,
// OPENAI_API_KEY) and NEXUS_EMBED_DIM. Unset variables leave their fields at
// zero. It fails, with code invalid, only on a NEXUS_EMBED_DIM that is not a
// non-negative integer; [NewOpenAI] checks the rest.
func OpenAIConfigFromEnv() (OpenAIConfig, error) {
	cfg := OpenAIConfig{
		BaseURL: strings.TrimSpace(os.Getenv(EnvURL)),
		Model:   strings.TrimSpace(os.Getenv(EnvModel)),
		APIKey:  strings.TrimSpace(os.Getenv(EnvAPIKey)),
	}
	if cfg.APIKey == "" {
		cfg.APIKey = strings.TrimSpace(os.Getenv(EnvOpenAIKey))
	}
	if s := strings.TrimSpace(os.Getenv(EnvDimension)); s != "" {
		dim, err := strconv.Atoi(s)
		if err != nil || dim < 0 {
			return OpenAIConfig{}, nexus.Errorf(nexus.EInvalid, "%s=%q is not a non-negative integer", EnvDimension, s)
		}
		cfg.Dimension = dim
	}
	return cfg, nil
}

// String describes the configuration without its API key, so that it can be
// printed or logged.
func (c OpenAIConfig) String() string {
	key := "none"
	if c.APIKey != "" {
		key = "set"
	}
	return fmt.Sprintf("embed.OpenAIConfig{BaseURL:%q Model:%q APIKey:%s Dimension:%d BatchSize:%d Timeout:%v MaxRetries:%d}",
		redactURL(c.BaseURL), c.Model, key, c.Dimension, c.BatchSize, c.Timeout, c.MaxRetries)
}

// GoString is String, so that %#v does not print the key either.
func (c OpenAIConfig) GoString() string { return c.String() }

// LogValue keeps the key out of structured logs.
func (c OpenAIConfig) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Validate reports the first problem of c as an error with code invalid.
func (c OpenAIConfig) Validate() error {
	if _, err := endpointURL(c.BaseURL); err != nil {
		return err
	}
	if strings.TrimSpace(c.Model) == "" {
		return nexus.Errorf(nexus.EInvalid, "embedding model is empty (set %s)", EnvModel)
	}
	for _, f := range []struct {
		name  string
		value int64
	}{
		{"dimension", int64(c.Dimension)}, {"batch size", int64(c.BatchSize)}, {"timeout", int64(c.Timeout)},
		{"retry base", int64(c.RetryBase)}, {"retry max", int64(c.RetryMax)},
		{"breaker failures", int64(c.BreakerFailures)}, {"breaker cooldown", int64(c.BreakerCooldown)},
	} {
		if f.value < 0 {
			return nexus.Errorf(nexus.EInvalid, "embedding %s is negative", f.name)
		}
	}
	if c.RetryMax > 0 && c.RetryBase > c.RetryMax {
		return nexus.Errorf(nexus.EInvalid, "embedding retry base %v exceeds retry max %v", c.RetryBase, c.RetryMax)
	}
	return nil
}

// withDefaults returns c with zero fields set to their defaults.
func (c OpenAIConfig) withDefaults() OpenAIConfig {
	c.Model = strings.TrimSpace(c.Model)
	c.BatchSize = orDefault(c.BatchSize, DefaultBatchSize)
	c.Timeout = orDefault(c.Timeout, DefaultTimeout)
	c.MaxRetries = orDefault(c.MaxRetries, DefaultMaxRetries)
	c.MaxRetries = max(c.MaxRetries, 0)
	c.RetryBase = orDefault(c.RetryBase, DefaultRetryBase)
	c.RetryMax = orDefault(c.RetryMax, max(DefaultRetryMax, c.RetryBase))
	c.BreakerFailures = orDefault(c.BreakerFailures, DefaultBreakerFailures)
	c.BreakerCooldown = orDefault(c.BreakerCooldown, DefaultBreakerCooldown)
	if c.HTTPClient == nil {
		c.HTTPClient = http.DefaultClient
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// orDefault returns v, or def if v is zero.
func orDefault[T int | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// endpointURL returns the embeddings endpoint of base: base itself if it
// ends in /embeddings, base + "/embeddings" if it ends in /v1, and
// base + "/v1/embeddings" otherwise.
func endpointURL(base string) (string, error) {
	base = strings.TrimSpace(base)
	if base == "" {
		return "", nexus.Errorf(nexus.EInvalid, "embedding base URL is empty (set %s)", EnvURL)
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", nexus.Errorf(nexus.EInvalid, "embedding base URL does not parse")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", nexus.Errorf(nexus.EInvalid, "embedding base URL %q is not http or https", redactURL(base))
	}
	if u.Host == "" {
		return "", nexus.Errorf(nexus.EInvalid, "embedding base URL %q has no host", redactURL(base))
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return "", nexus.Errorf(nexus.EInvalid, "embedding base URL %q has a query or fragment", redactURL(base))
	}
	path := strings.TrimRight(u.Path, "/")
	switch {
	case strings.HasSuffix(path, "/embeddings"):
	case strings.HasSuffix(path, "/v1"):
		path += "/embeddings"
	default:
		path += "/v1/embeddings"
	}
	u.Path, u.RawPath = path, ""
	return u.String(), nil
}

// redactURL returns s without a password, query or fragment, which might
// hold a key, and "(unparsable)" if it does not parse, since it might then
// hold anything.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable)"
	}
	if u.RawQuery != "" || u.ForceQuery {
		u.RawQuery, u.ForceQuery = "", true
	}
	u.Fragment, u.RawFragment = "", ""
	return strings.Replace(u.Redacted(), "?", "?…", 1)
}

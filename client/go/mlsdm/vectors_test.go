package mlsdm_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/mlsdm/mlsdm-grpc/client/go/mlsdm"
	mlsdmv1 "github.com/mlsdm/mlsdm-grpc/client/go/mlsdm/v1"
)

const language = "go"

type vectorFile struct {
	Format  int      `json:"format"`
	Vectors []vector `json:"vectors"`
}

type vector struct {
	Name      string                     `json:"name"`
	RPC       string                     `json:"rpc"`
	Tenant    string                     `json:"tenant"`
	Metadata  map[string]string          `json:"metadata"`
	TimeoutMS int64                      `json:"timeout_ms"`
	Setup     []setupCall                `json:"setup"`
	Request   json.RawMessage            `json:"request"`
	Expect    map[string]json.RawMessage `json:"expect"`
}

// setupCall is one call made before the checked one, on the same tenant; it
// must end OK.
type setupCall struct {
	RPC     string          `json:"rpc"`
	Request json.RawMessage `json:"request"`
	// Save names response values (dotted paths) for later calls as ${name}.
	Save map[string]string `json:"save"`
}

var knownExpectKeys = map[string]bool{
	"code": true, "fields": true, "non_empty": true, "headers_non_empty": true, "headers": true,
	"error_info": true,
}

func vectorsPath() string {
	if p := os.Getenv("MLSDM_VECTORS"); p != "" {
		return p
	}
	return filepath.Join("..", "..", "..", "tests", "vectors", "vectors.json")
}

func loadVectors(t *testing.T) []vector {
	t.Helper()
	raw, err := os.ReadFile(vectorsPath())
	if err != nil {
		t.Fatalf("read vectors: %v", err)
	}
	var f vectorFile
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("parse vectors: %v", err)
	}
	if f.Format != 1 || len(f.Vectors) == 0 {
		t.Fatalf("unsupported vectors file: format %d, %d vectors", f.Format, len(f.Vectors))
	}
	return f.Vectors
}

// newRequest parses the vector's proto JSON into the RPC's request type;
// unknown fields are an error so a typo in the file cannot go unnoticed.
func newRequest(v vector) (proto.Message, error) {
	return parseRequest(v.Name, v.RPC, v.Request)
}

func parseRequest(name, rpc string, raw json.RawMessage) (proto.Message, error) {
	var req proto.Message
	switch rpc {
	case "Generate":
		req = &mlsdmv1.GenerateRequest{}
	case "ProcessEvent":
		req = &mlsdmv1.ProcessEventRequest{}
	case "GetState":
		req = &mlsdmv1.GetStateRequest{}
	case "Remember":
		req = &mlsdmv1.RememberRequest{}
	case "Recall":
		req = &mlsdmv1.RecallRequest{}
	case "ListMemories":
		req = &mlsdmv1.ListMemoriesRequest{}
	case "GetMemory":
		req = &mlsdmv1.GetMemoryRequest{}
	case "ForgetMemory":
		req = &mlsdmv1.ForgetMemoryRequest{}
	case "ForgetMemories":
		req = &mlsdmv1.ForgetMemoriesRequest{}
	default:
		return nil, fmt.Errorf("%s: unknown rpc %q", name, rpc)
	}
	if err := protojson.Unmarshal(raw, req); err != nil {
		return nil, fmt.Errorf("request of %s: %w", name, err)
	}
	return req, nil
}

func invoke(ctx context.Context, c *mlsdm.Client, req proto.Message, opts ...grpc.CallOption) (proto.Message, error) {
	switch r := req.(type) {
	case *mlsdmv1.GenerateRequest:
		return c.Cognitive.Generate(ctx, r, opts...)
	case *mlsdmv1.ProcessEventRequest:
		return c.Cognitive.ProcessEvent(ctx, r, opts...)
	case *mlsdmv1.GetStateRequest:
		return c.Cognitive.GetState(ctx, r, opts...)
	case *mlsdmv1.RememberRequest:
		return c.Memory.Remember(ctx, r, opts...)
	case *mlsdmv1.RecallRequest:
		return c.Memory.Recall(ctx, r, opts...)
	case *mlsdmv1.ListMemoriesRequest:
		return c.Memory.ListMemories(ctx, r, opts...)
	case *mlsdmv1.GetMemoryRequest:
		return c.Memory.GetMemory(ctx, r, opts...)
	case *mlsdmv1.ForgetMemoryRequest:
		return c.Memory.ForgetMemory(ctx, r, opts...)
	case *mlsdmv1.ForgetMemoriesRequest:
		return c.Memory.ForgetMemories(ctx, r, opts...)
	}
	return nil, fmt.Errorf("no stub for %T", req)
}

// expand returns raw (JSON) with every ${name} of saved replaced in its
// strings.
func expand(raw json.RawMessage, saved map[string]string) (json.RawMessage, error) {
	if len(saved) == 0 || len(raw) == 0 {
		return raw, nil
	}
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	return json.Marshal(expandValue(doc, saved))
}

func expandValue(v any, saved map[string]string) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, val := range x {
			out[k] = expandValue(val, saved)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, val := range x {
			out[i] = expandValue(val, saved)
		}
		return out
	case string:
		for name, text := range saved {
			x = strings.ReplaceAll(x, "${"+name+"}", text)
		}
		return x
	}
	return v
}

// saveFrom reads the values a setup call's save names from its response;
// each must be a non-empty string.
func saveFrom(s setupCall, resp proto.Message, saved map[string]string) error {
	doc, err := protoToGeneric(resp)
	if err != nil {
		return err
	}
	for name, path := range s.Save {
		val, found := lookup(doc, path)
		text, isString := val.(string)
		if !found || !isString || text == "" {
			return fmt.Errorf("save %s: response.%s is %v, not a non-empty string", name, path, val)
		}
		saved[name] = text
	}
	return nil
}

// expandVector fills saved values into the vector's request and expect.
func expandVector(v vector, saved map[string]string) (vector, error) {
	out := v
	var err error
	if out.Request, err = expand(v.Request, saved); err != nil {
		return v, err
	}
	out.Expect = make(map[string]json.RawMessage, len(v.Expect))
	for k, raw := range v.Expect {
		if out.Expect[k], err = expand(raw, saved); err != nil {
			return v, err
		}
	}
	return out, nil
}

// protoToGeneric prints m as canonical proto JSON with unpopulated fields, the
// form every language's runner compares against.
func protoToGeneric(m proto.Message) (any, error) {
	b, err := protojson.MarshalOptions{EmitUnpopulated: true}.Marshal(m)
	if err != nil {
		return nil, err
	}
	var out any
	return out, json.Unmarshal(b, &out)
}

// subset reports every place where actual does not contain expected.
func subset(expected, actual any, path string, tenant string) []string {
	switch e := expected.(type) {
	case map[string]any:
		a, ok := actual.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: expected an object, got %v", path, actual)}
		}
		keys := make([]string, 0, len(e))
		for k := range e {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var out []string
		for _, k := range keys {
			av, present := a[k]
			if !present {
				out = append(out, fmt.Sprintf("%s.%s: missing", path, k))
				continue
			}
			out = append(out, subset(e[k], av, path+"."+k, tenant)...)
		}
		return out
	case []any:
		a, ok := actual.([]any)
		if !ok || len(a) != len(e) {
			return []string{fmt.Sprintf("%s: expected %v, got %v", path, e, actual)}
		}
		var out []string
		for i := range e {
			out = append(out, subset(e[i], a[i], fmt.Sprintf("%s[%d]", path, i), tenant)...)
		}
		return out
	case float64:
		a, ok := actual.(float64)
		if !ok || math.Abs(a-e) > 1e-9 {
			return []string{fmt.Sprintf("%s: expected %v, got %v", path, e, actual)}
		}
		return nil
	case string:
		want := strings.ReplaceAll(e, "${tenant}", tenant)
		if actual != want {
			return []string{fmt.Sprintf("%s: expected %q, got %v", path, want, actual)}
		}
		return nil
	default:
		if expected != actual {
			return []string{fmt.Sprintf("%s: expected %v, got %v", path, expected, actual)}
		}
		return nil
	}
}

// lookup finds the value at a dotted path; a segment that is a number
// indexes a list.
func lookup(doc any, dotted string) (any, bool) {
	cur := doc
	for _, part := range strings.Split(dotted, ".") {
		switch node := cur.(type) {
		case map[string]any:
			next, ok := node[part]
			if !ok {
				return nil, false
			}
			cur = next
		case []any:
			i, err := strconv.Atoi(part)
			if err != nil || i < 0 || i >= len(node) {
				return nil, false
			}
			cur = node[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

func nonEmpty(v any) bool {
	switch x := v.(type) {
	case string:
		return x != ""
	case []any:
		return len(x) > 0
	case map[string]any:
		return len(x) > 0
	case nil:
		return false
	}
	return true
}

func codeByName(name string) (codes.Code, error) {
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		if strings.EqualFold(strings.ReplaceAll(c.String(), " ", ""), strings.ReplaceAll(name, "_", "")) {
			return c, nil
		}
	}
	return 0, fmt.Errorf("unknown status code %q", name)
}

// check compares one call's outcome with the vector's expectations and
// returns every mismatch (empty when the vector passes).
func check(v vector, tenant string, resp proto.Message, err error, header metadata.MD) []string {
	var problems []string
	for k := range v.Expect {
		if !knownExpectKeys[k] {
			problems = append(problems, fmt.Sprintf("unknown expect key %q", k))
		}
	}
	var codeName string
	if jerr := json.Unmarshal(v.Expect["code"], &codeName); jerr != nil {
		return append(problems, "expect.code missing or not a string")
	}
	want, cerr := codeByName(codeName)
	if cerr != nil {
		return append(problems, cerr.Error())
	}
	if got := status.Code(err); got != want {
		return append(problems, fmt.Sprintf("code: expected %s, got %s (%v)", want, got, err))
	}
	if raw, ok := v.Expect["fields"]; ok {
		var expected any
		_ = json.Unmarshal(raw, &expected)
		if resp == nil {
			problems = append(problems, "fields: no response")
		} else if actual, jerr := protoToGeneric(resp); jerr != nil {
			problems = append(problems, jerr.Error())
		} else {
			problems = append(problems, subset(expected, actual, "response", tenant)...)
		}
	}
	if raw, ok := v.Expect["non_empty"]; ok {
		var paths []string
		_ = json.Unmarshal(raw, &paths)
		actual, _ := protoToGeneric(resp)
		for _, p := range paths {
			if val, found := lookup(actual, p); !found || !nonEmpty(val) {
				problems = append(problems, fmt.Sprintf("response.%s: expected non-empty, got %v", p, val))
			}
		}
	}
	if raw, ok := v.Expect["headers_non_empty"]; ok {
		var keys []string
		_ = json.Unmarshal(raw, &keys)
		for _, k := range keys {
			if vals := header.Get(k); len(vals) == 0 || vals[0] == "" {
				problems = append(problems, fmt.Sprintf("header %s: expected non-empty, got %v", k, vals))
			}
		}
	}
	if raw, ok := v.Expect["headers"]; ok {
		var want map[string]string
		if jerr := json.Unmarshal(raw, &want); jerr != nil {
			problems = append(problems, "expect.headers: "+jerr.Error())
		}
		keys := make([]string, 0, len(want))
		for k := range want {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			w := strings.ReplaceAll(want[k], "${tenant}", tenant)
			if vals := header.Get(k); len(vals) != 1 || vals[0] != w {
				problems = append(problems, fmt.Sprintf("header %s: expected %q, got %v", k, w, vals))
			}
		}
	}
	if raw, ok := v.Expect["error_info"]; ok {
		var expected any
		_ = json.Unmarshal(raw, &expected)
		infos := mlsdm.ErrorInfos(err)
		if len(infos) != 1 {
			problems = append(problems, fmt.Sprintf("error_info: expected exactly one ErrorInfo, got %d", len(infos)))
		} else if actual, jerr := protoToGeneric(infos[0]); jerr != nil {
			problems = append(problems, jerr.Error())
		} else {
			problems = append(problems, subset(expected, actual, "error_info", tenant)...)
		}
	}
	return problems
}

func runID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// TestVectorsLive runs every shared vector against the server at MLSDM_ADDR.
func TestVectorsLive(t *testing.T) {
	addr := os.Getenv("MLSDM_ADDR")
	if addr == "" {
		t.Skip("MLSDM_ADDR not set: no server to run the shared vectors against " +
			"(tests/vectors/test_polyglot_clients.py starts one and sets it)")
	}
	vectors := loadVectors(t)
	c, err := mlsdm.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	run := runID()
	for _, v := range vectors {
		t.Run(v.Name, func(t *testing.T) {
			req, err := newRequest(v)
			if err != nil {
				t.Fatal(err)
			}
			tenant := fmt.Sprintf("%s-%s-%s", v.Tenant, language, run)
			timeout := time.Duration(v.TimeoutMS) * time.Millisecond
			if timeout == 0 {
				timeout = 20 * time.Second
			}
			md := metadata.Pairs(mlsdm.HeaderTenant, tenant)
			for k, val := range v.Metadata {
				md.Append(k, strings.ReplaceAll(val, "${tenant}", tenant))
			}
			// Every call (setup ones included) gets the vector's metadata and
			// its own deadline of timeout_ms.
			callCtx := func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				return metadata.NewOutgoingContext(ctx, md), cancel
			}
			// setup: earlier calls on the same tenant, each of which must end
			// OK; their saved values fill the later requests and expect.
			saved := map[string]string{}
			for i, s := range v.Setup {
				raw, err := expand(s.Request, saved)
				if err != nil {
					t.Fatal(err)
				}
				earlier, err := parseRequest(v.Name, s.RPC, raw)
				if err != nil {
					t.Fatal(err)
				}
				sctx, scancel := callCtx()
				resp, err := invoke(sctx, c, earlier)
				scancel()
				if err != nil {
					t.Fatalf("setup[%d] %s: expected OK, got %s (%v)", i, s.RPC, status.Code(err), err)
				}
				if err := saveFrom(s, resp, saved); err != nil {
					t.Fatalf("setup[%d] %s: %v", i, s.RPC, err)
				}
			}
			v, err := expandVector(v, saved)
			if err != nil {
				t.Fatal(err)
			}
			req, err = newRequest(v)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := callCtx()
			defer cancel()
			// "headers" in the vectors means response metadata: a unary
			// reply carries the server's keys in its trailers.
			var header, trailer metadata.MD
			resp, callErr := invoke(ctx, c, req, grpc.Header(&header), grpc.Trailer(&trailer))
			if callErr != nil {
				resp = nil
			}
			for _, p := range check(v, tenant, resp, callErr, metadata.Join(header, trailer)) {
				t.Error(p)
			}
		})
	}
}

// TestVectorsFile needs no server: every request parses into its stub type
// and every expectation uses only keys the runners know.
func TestVectorsFile(t *testing.T) {
	seen := map[string]bool{}
	for _, v := range loadVectors(t) {
		if seen[v.Name] {
			t.Errorf("duplicate vector name %q", v.Name)
		}
		seen[v.Name] = true
		if _, err := newRequest(v); err != nil {
			t.Error(err)
		}
		for _, s := range v.Setup {
			if _, err := parseRequest(v.Name+" setup", s.RPC, s.Request); err != nil {
				t.Error(err)
			}
		}
		if v.Tenant == "" {
			t.Errorf("%s: no tenant", v.Name)
		}
		for k := range v.Expect {
			if !knownExpectKeys[k] {
				t.Errorf("%s: unknown expect key %q", v.Name, k)
			}
		}
	}
}

// TestCheckCatchesWrongExpectations proves the comparator can fail.
func TestCheckCatchesWrongExpectations(t *testing.T) {
	resp := &mlsdmv1.GenerateResponse{Accepted: false, RefusalReason: mlsdmv1.RefusalReason_REFUSAL_REASON_MORAL, Step: 1}
	header := metadata.Pairs(mlsdm.HeaderVersion, "1.2.3")
	mk := func(expect string) vector {
		var e map[string]json.RawMessage
		if err := json.Unmarshal([]byte(expect), &e); err != nil {
			t.Fatal(err)
		}
		return vector{Name: "t", Expect: e}
	}
	good := mk(`{"code":"OK","fields":{"accepted":false,"refusalReason":"REFUSAL_REASON_MORAL","step":"1","response":""},"headers_non_empty":["x-mlsdm-version"],"headers":{"x-mlsdm-version":"1.2.3"}}`)
	if p := check(good, "t", resp, nil, header); len(p) != 0 {
		t.Fatalf("matching expectation failed: %v", p)
	}
	for _, bad := range []string{
		`{"code":"INVALID_ARGUMENT"}`,
		`{"code":"OK","fields":{"accepted":true}}`,
		`{"code":"OK","fields":{"refusalReason":"REFUSAL_REASON_SLEEP"}}`,
		`{"code":"OK","fields":{"step":"2"}}`,
		`{"code":"OK","fields":{"noSuchField":1}}`,
		`{"code":"OK","non_empty":["response"]}`,
		`{"code":"OK","headers_non_empty":["x-request-id"]}`,
		`{"code":"OK","headers":{"x-mlsdm-version":"1.2.4"}}`,
		`{"code":"OK","headers":{"x-request-id":""}}`,
		`{"code":"OK","error_info":{"reason":"X"}}`,
		`{"code":"OK","surprise":1}`,
	} {
		if p := check(mk(bad), "t", resp, nil, header); len(p) == 0 {
			t.Errorf("wrong expectation %s passed", bad)
		}
	}
	recalled := &mlsdmv1.GenerateResponse{ContextItems: []*mlsdmv1.ContextItem{{Prompt: "p", Response: "r", Step: 1, AgeSteps: 1}}}
	if p := check(mk(`{"code":"OK","non_empty":["contextItems.0.response"]}`), "t", recalled, nil, nil); len(p) != 0 {
		t.Errorf("list index path failed: %v", p)
	}
	for _, path := range []string{"contextItems.1.response", "contextItems.0.text", "contextItems.x.response"} {
		if p := check(mk(`{"code":"OK","non_empty":["`+path+`"]}`), "t", recalled, nil, nil); len(p) == 0 {
			t.Errorf("non_empty %s passed", path)
		}
	}
	if p := check(mk(`{"code":"OK","non_empty":["contextItems.0.response"]}`), "t", resp, nil, header); len(p) == 0 {
		t.Error("non_empty on an empty list passed")
	}
	remembered := &mlsdmv1.RememberResponse{Results: []*mlsdmv1.RememberResult{{Stored: true, Id: "m-1"}}}
	saved := map[string]string{}
	if err := saveFrom(setupCall{Save: map[string]string{"id": "results.0.id"}}, remembered, saved); err != nil || saved["id"] != "m-1" {
		t.Errorf("save failed: %v %v", err, saved)
	}
	for _, path := range []string{"results.1.id", "results.0.stored", "storedCount"} {
		if err := saveFrom(setupCall{Save: map[string]string{"id": path}}, remembered, map[string]string{}); err == nil {
			t.Errorf("save of %s passed", path)
		}
	}
	if got, err := expand(json.RawMessage(`{"id":"${id}","n":[1,"x${id}"],"t":"${tenant}"}`), saved); err != nil ||
		string(got) != `{"id":"m-1","n":[1,"xm-1"],"t":"${tenant}"}` {
		t.Errorf("expand: %s %v", got, err)
	}
	err := status.Error(codes.DeadlineExceeded, "late")
	if p := check(mk(`{"code":"DEADLINE_EXCEEDED"}`), "t", nil, err, nil); len(p) != 0 {
		t.Errorf("code match failed: %v", p)
	}
	if p := check(mk(`{"code":"DEADLINE_EXCEEDED","error_info":{"reason":"DEADLINE_EXPIRED"}}`), "t", nil, err, nil); len(p) == 0 {
		t.Error("missing ErrorInfo passed")
	}
}

// Package mlsdm is a thin layer over the generated mlsdm.v1 stubs: it dials the
// server, attaches the request metadata the service reads, and pulls the
// google.rpc.ErrorInfo out of a failed call's status details.
package mlsdm

import (
	"context"
	"errors"
	"iter"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	mlsdmv1 "github.com/mlsdm/mlsdm-grpc/client/go/mlsdm/v1"
)

// Request metadata keys understood by the server.
const (
	HeaderTenant    = "x-mlsdm-tenant"
	HeaderPriority  = "x-mlsdm-priority"
	HeaderRequestID = "x-request-id"
	HeaderVersion   = "x-mlsdm-version"
	// ErrorDomain is the ErrorInfo.domain of every error the server sends.
	ErrorDomain = "mlsdm.io"
)

// Client bundles a connection with the service stubs. Memory is the
// tenant's memory as a memory layer (Remember, Recall, ListMemories,
// GetMemory, ForgetMemory, ForgetMemories): no LLM call, and Recall stores
// nothing.
type Client struct {
	Conn      *grpc.ClientConn
	Cognitive mlsdmv1.CognitiveServiceClient
	Memory    mlsdmv1.MemoryServiceClient
	Admin     mlsdmv1.AdminServiceClient
}

// Dial opens a plaintext channel to addr (host:port). Plaintext matches the
// server's loopback default; pass grpc.WithTransportCredentials to override.
func Dial(addr string, opts ...grpc.DialOption) (*Client, error) {
	all := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)
	conn, err := grpc.NewClient(addr, all...)
	if err != nil {
		return nil, err
	}
	return &Client{
		Conn:      conn,
		Cognitive: mlsdmv1.NewCognitiveServiceClient(conn),
		Memory:    mlsdmv1.NewMemoryServiceClient(conn),
		Admin:     mlsdmv1.NewAdminServiceClient(conn),
	}, nil
}

// Close releases the connection.
func (c *Client) Close() error { return c.Conn.Close() }

// WithTenant returns a context whose calls use the given tenant and priority
// (either may be empty to leave the server default).
func WithTenant(ctx context.Context, tenant, priority string) context.Context {
	if tenant != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, HeaderTenant, tenant)
	}
	if priority != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, HeaderPriority, priority)
	}
	return ctx
}

// ErrorInfo returns the ErrorInfo carried in err's status details, if any.
// The server attaches exactly one to every error; its absence means the error
// was produced locally (for example a client-side deadline).
func ErrorInfo(err error) (*errdetails.ErrorInfo, bool) {
	if err == nil {
		return nil, false
	}
	st, ok := status.FromError(err)
	if !ok {
		return nil, false
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info, true
		}
	}
	return nil, false
}

// ErrorInfos returns every ErrorInfo in err's status details (the contract
// says exactly one; tests check that).
func ErrorInfos(err error) []*errdetails.ErrorInfo {
	var out []*errdetails.ErrorInfo
	st, ok := status.FromError(err)
	if !ok {
		return nil
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			out = append(out, info)
		}
	}
	return out
}

// ErrNoDetails is returned by Reason when the error carries no ErrorInfo.
var ErrNoDetails = errors.New("mlsdm: error carries no google.rpc.ErrorInfo")

// Reason returns ErrorInfo.reason (e.g. "DIMENSION_MISMATCH").
func Reason(err error) (string, error) {
	info, ok := ErrorInfo(err)
	if !ok {
		return "", ErrNoDetails
	}
	return info.GetReason(), nil
}

// Memories walks every memory matching filter, newest first, one
// ListMemories call per page of pageSize (0: the server's default). It stops
// at the first error, which it yields with a nil memory. ctx's deadline
// bounds the whole walk.
func (c *Client) Memories(ctx context.Context, filter *mlsdmv1.MemoryFilter, pageSize int32, opts ...grpc.CallOption) iter.Seq2[*mlsdmv1.Memory, error] {
	return func(yield func(*mlsdmv1.Memory, error) bool) {
		token := ""
		for {
			page, err := c.Memory.ListMemories(ctx, &mlsdmv1.ListMemoriesRequest{
				PageSize: pageSize, PageToken: token, Filter: filter,
			}, opts...)
			if err != nil {
				yield(nil, err)
				return
			}
			for _, m := range page.GetMemories() {
				if !yield(m, nil) {
					return
				}
			}
			token = page.GetNextPageToken()
			if token == "" {
				return
			}
		}
	}
}

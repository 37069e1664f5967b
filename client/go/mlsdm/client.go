// Package mlsdm is a thin layer over the generated mlsdm.v1 stubs: it dials the
// server, attaches the request metadata the service reads, and pulls the
// google.rpc.ErrorInfo out of a failed call's status details.
package mlsdm

import (
	"context"
	"errors"

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

// Client bundles a connection with the two service stubs.
type Client struct {
	Conn      *grpc.ClientConn
	Cognitive mlsdmv1.CognitiveServiceClient
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

// Command example makes a few calls to an mlsdm gRPC server: GetState, an
// accepted Generate, and a ProcessEvent with a wrong dimension whose
// ErrorInfo is printed. Usage: MLSDM_ADDR=127.0.0.1:50051 go run ./cmd/example
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/mlsdm/mlsdm-grpc/client/go/mlsdm"
	mlsdmv1 "github.com/mlsdm/mlsdm-grpc/client/go/mlsdm/v1"
)

func main() {
	addr := os.Getenv("MLSDM_ADDR")
	if addr == "" {
		addr = "127.0.0.1:50051"
	}
	c, err := mlsdm.Dial(addr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctx = mlsdm.WithTenant(ctx, "example-go", "normal")

	var trailer metadata.MD // x-request-id and x-mlsdm-version come in the trailers
	state, err := c.Cognitive.GetState(ctx, &mlsdmv1.GetStateRequest{}, grpc.Trailer(&trailer))
	if err != nil {
		log.Fatalf("GetState: %v", err)
	}
	fmt.Printf("server %s, tenant %s, step %d, phase %s, dim %d\n",
		firstOf(trailer.Get(mlsdm.HeaderVersion)), state.GetTenant(), state.GetStep(), state.GetPhase(), state.GetDim())

	gen, err := c.Cognitive.Generate(ctx, &mlsdmv1.GenerateRequest{
		Prompt:     "Explain how a library organises its books by subject.",
		MoralValue: proto.Float64(0.9),
	})
	if err != nil {
		log.Fatalf("Generate: %v", err)
	}
	fmt.Printf("accepted=%v refusal=%s response=%q\n", gen.GetAccepted(), gen.GetRefusalReason(), gen.GetResponse())

	_, err = c.Cognitive.ProcessEvent(ctx, &mlsdmv1.ProcessEventRequest{
		Vector: []float32{1, 2, 3}, MoralValue: proto.Float64(0.9),
	})
	info, _ := mlsdm.ErrorInfo(err)
	fmt.Printf("ProcessEvent: code=%s reason=%s metadata=%v\n", status.Code(err), info.GetReason(), info.GetMetadata())
}

func firstOf(values []string) string {
	if len(values) == 0 {
		return ""
	}
	return values[0]
}

// Command example makes a few calls to an mlsdm gRPC server: GetState, an
// accepted Generate, a ProcessEvent with a wrong dimension whose ErrorInfo is
// printed, then the memory calls: Remember, Recall, a walk over the
// memories, Forget, and the NOT_FOUND of a GetMemory after it.
// Usage: MLSDM_ADDR=127.0.0.1:50051 go run ./cmd/example
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
	"google.golang.org/protobuf/types/known/timestamppb"

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

	if err := memories(ctx, c); err != nil {
		log.Fatal(err)
	}
}

// memories remembers two turns of a conversation, recalls one, lists them,
// forgets the recalled one and shows that it is gone.
func memories(ctx context.Context, c *mlsdm.Client) error {
	said := time.Date(2023, 5, 8, 13, 56, 0, 0, time.UTC)
	stored, err := c.Memory.Remember(ctx, &mlsdmv1.RememberRequest{Memories: []*mlsdmv1.MemoryInput{
		{Text: "Caroline: I went to the support group yesterday.", Speaker: "Caroline",
			OccurredAt: timestamppb.New(said), Session: "conv-1"},
		{Text: "Melanie: I painted a sunrise last week.", Speaker: "Melanie",
			OccurredAt: timestamppb.New(said.Add(time.Minute)), Session: "conv-1"},
	}})
	if err != nil {
		return fmt.Errorf("Remember: %w", err)
	}
	fmt.Printf("remembered %d\n", stored.GetStoredCount())
	hits, err := c.Memory.Recall(ctx, &mlsdmv1.RecallRequest{Query: "When did Caroline go to the support group?", TopK: 1})
	if err != nil {
		return fmt.Errorf("Recall: %w", err)
	}
	for _, hit := range hits.GetItems() {
		m := hit.GetMemory()
		fmt.Printf("recalled %s (%s, %s): %q\n", m.GetId(), m.GetSpeaker(), m.GetOccurredAt().AsTime().Format(time.RFC3339), m.GetText())
	}
	for m, err := range c.Memories(ctx, &mlsdmv1.MemoryFilter{Session: "conv-1"}, 100) {
		if err != nil {
			return fmt.Errorf("ListMemories: %w", err)
		}
		fmt.Printf("listed %s: %q\n", m.GetId(), m.GetText())
	}
	if len(hits.GetItems()) == 0 {
		return nil
	}
	id := hits.GetItems()[0].GetMemory().GetId()
	if _, err := c.Memory.ForgetMemory(ctx, &mlsdmv1.ForgetMemoryRequest{Id: id}); err != nil {
		return fmt.Errorf("ForgetMemory: %w", err)
	}
	_, err = c.Memory.GetMemory(ctx, &mlsdmv1.GetMemoryRequest{Id: id})
	reason, _ := mlsdm.Reason(err)
	fmt.Printf("GetMemory after forget: code=%s reason=%s\n", status.Code(err), reason)
	return nil
}

func firstOf(values []string) string {
	if len(values) == 0 {
		return ""
	}
	return values[0]
}

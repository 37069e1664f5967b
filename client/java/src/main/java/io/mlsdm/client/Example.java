package io.mlsdm.client;

import com.google.protobuf.Timestamp;
import com.google.rpc.ErrorInfo;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.MetadataUtils;
import io.mlsdm.grpc.v1.CognitiveServiceGrpc.CognitiveServiceBlockingStub;
import io.mlsdm.grpc.v1.ForgetMemoryRequest;
import io.mlsdm.grpc.v1.GenerateRequest;
import io.mlsdm.grpc.v1.GenerateResponse;
import io.mlsdm.grpc.v1.GetMemoryRequest;
import io.mlsdm.grpc.v1.GetStateRequest;
import io.mlsdm.grpc.v1.GetStateResponse;
import io.mlsdm.grpc.v1.Memory;
import io.mlsdm.grpc.v1.MemoryFilter;
import io.mlsdm.grpc.v1.MemoryInput;
import io.mlsdm.grpc.v1.MemoryServiceGrpc.MemoryServiceBlockingStub;
import io.mlsdm.grpc.v1.ProcessEventRequest;
import io.mlsdm.grpc.v1.RecallRequest;
import io.mlsdm.grpc.v1.RecallResponse;
import io.mlsdm.grpc.v1.RememberRequest;
import io.mlsdm.grpc.v1.RememberResponse;
import io.mlsdm.grpc.v1.ScoredMemory;
import java.time.Instant;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

/**
 * GetState, an accepted Generate, a ProcessEvent with the wrong dimension, then the memory calls
 * (Remember, Recall, a walk over the memories, ForgetMemory and the NOT_FOUND after it). Usage:
 * {@code MLSDM_ADDR=127.0.0.1:50051 mvn -q compile exec:java}
 */
public final class Example {
  private Example() {}

  public static void main(String[] args) throws InterruptedException {
    String addr = System.getenv().getOrDefault("MLSDM_ADDR", "127.0.0.1:50051");
    ManagedChannel channel = MlsdmClient.channel(addr);
    try {
      // x-request-id and x-mlsdm-version come in a unary call's trailers.
      AtomicReference<Metadata> trailers = new AtomicReference<>();
      CognitiveServiceBlockingStub stub =
          MlsdmClient.cognitive(channel, "example-java", "normal")
              .withInterceptors(
                  MetadataUtils.newCaptureMetadataInterceptor(new AtomicReference<>(), trailers));

      GetStateResponse state =
          stub.withDeadlineAfter(10, TimeUnit.SECONDS).getState(GetStateRequest.getDefaultInstance());
      System.out.printf(
          "server %s, tenant %s, step %d, phase %s, dim %d%n",
          trailers.get().get(MlsdmClient.VERSION),
          state.getTenant(),
          state.getStep(),
          state.getPhase(),
          state.getDim());

      GenerateResponse gen =
          stub.withDeadlineAfter(10, TimeUnit.SECONDS)
              .generate(
                  GenerateRequest.newBuilder()
                      .setPrompt("Explain how a library organises its books by subject.")
                      .setMoralValue(0.9)
                      .build());
      System.out.printf("accepted=%s response=%s%n", gen.getAccepted(), gen.getResponse());

      try {
        stub.withDeadlineAfter(10, TimeUnit.SECONDS)
            .processEvent(
                ProcessEventRequest.newBuilder()
                    .addAllVector(List.of(1f, 2f, 3f))
                    .setMoralValue(0.9)
                    .build());
      } catch (StatusRuntimeException e) {
        ErrorInfo info = MlsdmClient.errorInfos(e).stream().findFirst().orElse(ErrorInfo.getDefaultInstance());
        System.out.printf(
            "ProcessEvent: code=%s reason=%s metadata=%s%n",
            e.getStatus().getCode(), info.getReason(), info.getMetadataMap());
      }
      memories(MlsdmClient.memory(channel, "example-java", "normal"));
    } finally {
      channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
  }

  /** Remembers two turns, recalls one, lists them, forgets the recalled one. */
  private static void memories(MemoryServiceBlockingStub memory) {
    Instant said = Instant.parse("2023-05-08T13:56:00Z");
    RememberResponse stored =
        memory
            .withDeadlineAfter(10, TimeUnit.SECONDS)
            .remember(
                RememberRequest.newBuilder()
                    .addMemories(turn("Caroline", "I went to the support group yesterday.", said))
                    .addMemories(turn("Melanie", "I painted a sunrise last week.", said.plusSeconds(60)))
                    .build());
    System.out.printf("remembered %d%n", stored.getStoredCount());
    RecallResponse hits =
        memory
            .withDeadlineAfter(10, TimeUnit.SECONDS)
            .recall(
                RecallRequest.newBuilder()
                    .setQuery("When did Caroline go to the support group?")
                    .setTopK(1)
                    .build());
    for (ScoredMemory hit : hits.getItemsList()) {
      Memory m = hit.getMemory();
      System.out.printf(
          "recalled %s (%s, %s): %s%n",
          m.getId(), m.getSpeaker(), Instant.ofEpochSecond(m.getOccurredAt().getSeconds()), m.getText());
    }
    MemoryFilter session = MemoryFilter.newBuilder().setSession("conv-1").build();
    for (Memory m : MlsdmClient.allMemories(memory, session, 100, s -> s.withDeadlineAfter(10, TimeUnit.SECONDS))) {
      System.out.printf("listed %s: %s%n", m.getId(), m.getText());
    }
    if (hits.getItemsCount() == 0) {
      return;
    }
    String id = hits.getItems(0).getMemory().getId();
    memory.withDeadlineAfter(10, TimeUnit.SECONDS).forgetMemory(ForgetMemoryRequest.newBuilder().setId(id).build());
    try {
      memory.withDeadlineAfter(10, TimeUnit.SECONDS).getMemory(GetMemoryRequest.newBuilder().setId(id).build());
    } catch (StatusRuntimeException e) {
      System.out.printf(
          "GetMemory after forget: code=%s reason=%s%n",
          e.getStatus().getCode(), MlsdmClient.errorReason(e).orElse(""));
    }
  }

  private static MemoryInput turn(String speaker, String words, Instant when) {
    return MemoryInput.newBuilder()
        .setText(speaker + ": " + words)
        .setSpeaker(speaker)
        .setOccurredAt(Timestamp.newBuilder().setSeconds(when.getEpochSecond()).setNanos(when.getNano()))
        .setSession("conv-1")
        .build();
  }
}

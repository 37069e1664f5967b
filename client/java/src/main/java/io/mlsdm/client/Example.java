package io.mlsdm.client;

import com.google.rpc.ErrorInfo;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.MetadataUtils;
import io.mlsdm.grpc.v1.CognitiveServiceGrpc.CognitiveServiceBlockingStub;
import io.mlsdm.grpc.v1.GenerateRequest;
import io.mlsdm.grpc.v1.GenerateResponse;
import io.mlsdm.grpc.v1.GetStateRequest;
import io.mlsdm.grpc.v1.GetStateResponse;
import io.mlsdm.grpc.v1.ProcessEventRequest;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

/**
 * GetState, an accepted Generate and a ProcessEvent with the wrong dimension. Usage: {@code
 * MLSDM_ADDR=127.0.0.1:50051 mvn -q compile exec:java}
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
    } finally {
      channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
  }
}

package io.mlsdm.client;

import com.google.protobuf.Any;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.rpc.ErrorInfo;
import io.grpc.ClientInterceptor;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Metadata;
import io.grpc.protobuf.StatusProto;
import io.grpc.stub.MetadataUtils;
import io.mlsdm.grpc.v1.CognitiveServiceGrpc;
import io.mlsdm.grpc.v1.ListMemoriesRequest;
import io.mlsdm.grpc.v1.ListMemoriesResponse;
import io.mlsdm.grpc.v1.Memory;
import io.mlsdm.grpc.v1.MemoryFilter;
import io.mlsdm.grpc.v1.MemoryServiceGrpc;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.function.UnaryOperator;

/**
 * A thin layer over the generated io.mlsdm.grpc.v1 stubs: plaintext channels (the server's loopback
 * default), the request headers the server reads, and the google.rpc.ErrorInfo of a failed call.
 */
public final class MlsdmClient {
  public static final Metadata.Key<String> TENANT =
      Metadata.Key.of("x-mlsdm-tenant", Metadata.ASCII_STRING_MARSHALLER);
  public static final Metadata.Key<String> PRIORITY =
      Metadata.Key.of("x-mlsdm-priority", Metadata.ASCII_STRING_MARSHALLER);
  public static final Metadata.Key<String> REQUEST_ID =
      Metadata.Key.of("x-request-id", Metadata.ASCII_STRING_MARSHALLER);
  public static final Metadata.Key<String> VERSION =
      Metadata.Key.of("x-mlsdm-version", Metadata.ASCII_STRING_MARSHALLER);
  /** ErrorInfo.domain of every error the server sends. */
  public static final String ERROR_DOMAIN = "mlsdm.io";

  private MlsdmClient() {}

  /** A plaintext channel to host:port. */
  public static ManagedChannel channel(String addr) {
    return ManagedChannelBuilder.forTarget(addr).usePlaintext().build();
  }

  /** An interceptor adding the tenant and priority headers (null leaves the server default). */
  public static ClientInterceptor tenant(String tenant, String priority) {
    Metadata md = new Metadata();
    if (tenant != null) {
      md.put(TENANT, tenant);
    }
    if (priority != null) {
      md.put(PRIORITY, priority);
    }
    return MetadataUtils.newAttachHeadersInterceptor(md);
  }

  /** A blocking CognitiveService stub on the channel for one tenant and priority. */
  public static CognitiveServiceGrpc.CognitiveServiceBlockingStub cognitive(
      ManagedChannel channel, String tenant, String priority) {
    return CognitiveServiceGrpc.newBlockingStub(channel).withInterceptors(tenant(tenant, priority));
  }

  /**
   * A blocking MemoryService stub on the channel for one tenant and priority: Remember, Recall
   * (stores nothing), ListMemories, GetMemory, ForgetMemory, ForgetMemories. No LLM call.
   */
  public static MemoryServiceGrpc.MemoryServiceBlockingStub memory(
      ManagedChannel channel, String tenant, String priority) {
    return MemoryServiceGrpc.newBlockingStub(channel).withInterceptors(tenant(tenant, priority));
  }

  /**
   * Every memory matching {@code filter}, newest first, one ListMemories call per page of {@code
   * pageSize} (0: the server's default). {@code perCall} prepares the stub of each call, e.g.
   * {@code s -> s.withDeadlineAfter(5, SECONDS)}, so each page gets its own deadline.
   */
  public static List<Memory> allMemories(
      MemoryServiceGrpc.MemoryServiceBlockingStub stub,
      MemoryFilter filter,
      int pageSize,
      UnaryOperator<MemoryServiceGrpc.MemoryServiceBlockingStub> perCall) {
    List<Memory> out = new ArrayList<>();
    String token = "";
    do {
      ListMemoriesResponse page =
          perCall
              .apply(stub)
              .listMemories(
                  ListMemoriesRequest.newBuilder()
                      .setFilter(filter)
                      .setPageSize(pageSize)
                      .setPageToken(token)
                      .build());
      out.addAll(page.getMemoriesList());
      token = page.getNextPageToken();
    } while (!token.isEmpty());
    return out;
  }

  /**
   * Every ErrorInfo in the error's grpc-status-details-bin. The server attaches exactly one; none
   * means the error was produced locally (for example a client-side deadline).
   */
  public static List<ErrorInfo> errorInfos(Throwable t) {
    List<ErrorInfo> out = new ArrayList<>();
    com.google.rpc.Status status = StatusProto.fromThrowable(t);
    if (status == null) {
      return out;
    }
    for (Any detail : status.getDetailsList()) {
      if (detail.is(ErrorInfo.class)) {
        try {
          out.add(detail.unpack(ErrorInfo.class));
        } catch (InvalidProtocolBufferException e) {
          throw new IllegalStateException("undecodable ErrorInfo in status details", e);
        }
      }
    }
    return out;
  }

  /** ErrorInfo.reason (e.g. "DIMENSION_MISMATCH"), if the error carries one. */
  public static Optional<String> errorReason(Throwable t) {
    return errorInfos(t).stream().findFirst().map(ErrorInfo::getReason);
  }
}

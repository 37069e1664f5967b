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
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

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

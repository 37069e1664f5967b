package io.mlsdm.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import com.google.protobuf.Message;
import com.google.protobuf.util.JsonFormat;
import io.grpc.ClientInterceptor;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.MetadataUtils;
import io.mlsdm.grpc.v1.CognitiveServiceGrpc;
import io.mlsdm.grpc.v1.CognitiveServiceGrpc.CognitiveServiceBlockingStub;
import io.mlsdm.grpc.v1.ContextItem;
import io.mlsdm.grpc.v1.ForgetMemoriesRequest;
import io.mlsdm.grpc.v1.ForgetMemoryRequest;
import io.mlsdm.grpc.v1.GenerateRequest;
import io.mlsdm.grpc.v1.GenerateResponse;
import io.mlsdm.grpc.v1.GetMemoryRequest;
import io.mlsdm.grpc.v1.GetStateRequest;
import io.mlsdm.grpc.v1.ListMemoriesRequest;
import io.mlsdm.grpc.v1.MemoryServiceGrpc;
import io.mlsdm.grpc.v1.MemoryServiceGrpc.MemoryServiceBlockingStub;
import io.mlsdm.grpc.v1.ProcessEventRequest;
import io.mlsdm.grpc.v1.RecallRequest;
import io.mlsdm.grpc.v1.RefusalReason;
import io.mlsdm.grpc.v1.RememberRequest;
import io.mlsdm.grpc.v1.RememberResponse;
import io.mlsdm.grpc.v1.RememberResult;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Stream;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

/** Runs the shared vectors (tests/vectors/vectors.json) against the server at MLSDM_ADDR. */
class VectorsTest {
  private static final String LANGUAGE = "java";

  private static Message.Builder requestBuilder(String rpc) {
    return switch (rpc) {
      case "Generate" -> GenerateRequest.newBuilder();
      case "ProcessEvent" -> ProcessEventRequest.newBuilder();
      case "GetState" -> GetStateRequest.newBuilder();
      case "Remember" -> RememberRequest.newBuilder();
      case "Recall" -> RecallRequest.newBuilder();
      case "ListMemories" -> ListMemoriesRequest.newBuilder();
      case "GetMemory" -> GetMemoryRequest.newBuilder();
      case "ForgetMemory" -> ForgetMemoryRequest.newBuilder();
      case "ForgetMemories" -> ForgetMemoriesRequest.newBuilder();
      default -> throw new IllegalArgumentException("unknown rpc " + rpc);
    };
  }

  /** Parses the vector's (or a setup call's) proto JSON; unknown fields are an error. */
  private static Message request(JsonObject v) throws Exception {
    return request(v, Map.of());
  }

  /** The same, with the values saved by earlier setup calls filled in. */
  private static Message request(JsonObject v, Map<String, String> saved) throws Exception {
    Message.Builder b = requestBuilder(v.get("rpc").getAsString());
    JsonFormat.parser().merge(VectorCheck.expand(v.get("request"), saved).toString(), b);
    return b.build();
  }

  /** The two service stubs of one call, with the same interceptors and deadline. */
  private record Stubs(CognitiveServiceBlockingStub cognitive, MemoryServiceBlockingStub memory) {
    static Stubs of(ManagedChannel channel, long timeoutMs, ClientInterceptor... interceptors) {
      return new Stubs(
          CognitiveServiceGrpc.newBlockingStub(channel)
              .withInterceptors(interceptors)
              .withDeadlineAfter(timeoutMs, TimeUnit.MILLISECONDS),
          MemoryServiceGrpc.newBlockingStub(channel)
              .withInterceptors(interceptors)
              .withDeadlineAfter(timeoutMs, TimeUnit.MILLISECONDS));
    }
  }

  private static Message invoke(Stubs stubs, Message req) {
    CognitiveServiceBlockingStub stub = stubs.cognitive();
    MemoryServiceBlockingStub memory = stubs.memory();
    if (req instanceof GenerateRequest r) {
      return stub.generate(r);
    }
    if (req instanceof ProcessEventRequest r) {
      return stub.processEvent(r);
    }
    if (req instanceof GetStateRequest r) {
      return stub.getState(r);
    }
    if (req instanceof RememberRequest r) {
      return memory.remember(r);
    }
    if (req instanceof RecallRequest r) {
      return memory.recall(r);
    }
    if (req instanceof ListMemoriesRequest r) {
      return memory.listMemories(r);
    }
    if (req instanceof GetMemoryRequest r) {
      return memory.getMemory(r);
    }
    if (req instanceof ForgetMemoryRequest r) {
      return memory.forgetMemory(r);
    }
    if (req instanceof ForgetMemoriesRequest r) {
      return memory.forgetMemories(r);
    }
    throw new IllegalArgumentException("no stub for " + req.getClass());
  }

  @Test
  void vectorsFileIsWellFormed() throws Exception {
    Set<String> names = new HashSet<>();
    for (JsonObject v : VectorCheck.loadVectors()) {
      String name = v.get("name").getAsString();
      assertTrue(names.add(name), "duplicate vector " + name);
      assertNotNull(request(v));
      for (JsonObject call : VectorCheck.setupOf(v)) {
        assertTrue(call.keySet().containsAll(Set.of("rpc", "request")), name + ": setup call keys");
        assertTrue(Set.of("rpc", "request", "save").containsAll(call.keySet()), name + ": setup call keys");
        assertNotNull(request(call));
      }
      assertFalse(v.get("tenant").getAsString().isEmpty(), name + ": no tenant");
      for (String k : v.getAsJsonObject("expect").keySet()) {
        assertTrue(VectorCheck.KNOWN_EXPECT_KEYS.contains(k), name + ": unknown expect key " + k);
      }
    }
  }

  @Test
  void comparatorRejectsWrongExpectations() throws Exception {
    GenerateResponse resp =
        GenerateResponse.newBuilder().setRefusalReason(RefusalReason.REFUSAL_REASON_MORAL).setStep(1).build();
    Metadata headers = new Metadata();
    headers.put(MlsdmClient.VERSION, "1.2.3");
    VectorCheck.Outcome ok = new VectorCheck.Outcome(resp, null, headers);
    String good =
        "{\"code\":\"OK\",\"fields\":{\"accepted\":false,\"refusalReason\":\"REFUSAL_REASON_MORAL\","
            + "\"step\":\"1\",\"response\":\"\"},\"headers_non_empty\":[\"x-mlsdm-version\"],"
            + "\"headers\":{\"x-mlsdm-version\":\"1.2.3\"}}";
    assertEquals(List.of(), VectorCheck.check(vector(good), "t", ok));
    for (String bad :
        List.of(
            "{\"code\":\"INVALID_ARGUMENT\"}",
            "{\"code\":\"OK\",\"fields\":{\"accepted\":true}}",
            "{\"code\":\"OK\",\"fields\":{\"refusalReason\":\"REFUSAL_REASON_SLEEP\"}}",
            "{\"code\":\"OK\",\"fields\":{\"step\":\"2\"}}",
            "{\"code\":\"OK\",\"fields\":{\"noSuchField\":1}}",
            "{\"code\":\"OK\",\"non_empty\":[\"response\"]}",
            "{\"code\":\"OK\",\"headers_non_empty\":[\"x-request-id\"]}",
            "{\"code\":\"OK\",\"headers\":{\"x-mlsdm-version\":\"1.2.4\"}}",
            "{\"code\":\"OK\",\"headers\":{\"x-request-id\":\"\"}}",
            "{\"code\":\"OK\",\"error_info\":{\"reason\":\"X\"}}",
            "{\"code\":\"OK\",\"surprise\":1}")) {
      assertFalse(VectorCheck.check(vector(bad), "t", ok).isEmpty(), "wrong expectation passed: " + bad);
    }
    GenerateResponse recalled =
        GenerateResponse.newBuilder()
            .addContextItems(ContextItem.newBuilder().setPrompt("p").setResponse("r").setStep(1).setAgeSteps(1))
            .build();
    VectorCheck.Outcome withItem = new VectorCheck.Outcome(recalled, null, new Metadata());
    String firstItem = "{\"code\":\"OK\",\"non_empty\":[\"contextItems.0.response\"]}";
    assertEquals(List.of(), VectorCheck.check(vector(firstItem), "t", withItem));
    assertFalse(VectorCheck.check(vector(firstItem), "t", ok).isEmpty(), "non_empty on an empty list passed");
    for (String path : List.of("contextItems.1.response", "contextItems.0.text", "contextItems.x.response")) {
      String e = "{\"code\":\"OK\",\"non_empty\":[\"" + path + "\"]}";
      assertFalse(VectorCheck.check(vector(e), "t", withItem).isEmpty(), "non_empty passed: " + path);
    }
    RememberResponse remembered =
        RememberResponse.newBuilder().addResults(RememberResult.newBuilder().setStored(true).setId("m-1")).build();
    Map<String, String> saved = new HashMap<>();
    VectorCheck.saveFrom(setupCall("results.0.id"), remembered, saved);
    assertEquals(Map.of("id", "m-1"), saved);
    for (String path : List.of("results.1.id", "results.0.stored", "storedCount")) {
      boolean refused = false;
      try {
        VectorCheck.saveFrom(setupCall(path), remembered, new HashMap<>());
      } catch (IllegalStateException e) {
        refused = true;
      }
      assertTrue(refused, "save of " + path + " passed");
    }
    assertEquals(
        JsonParser.parseString("{\"id\":\"m-1\",\"n\":[1,\"xm-1\"],\"t\":\"${tenant}\"}"),
        VectorCheck.expand(
            JsonParser.parseString("{\"id\":\"${id}\",\"n\":[1,\"x${id}\"],\"t\":\"${tenant}\"}"), saved));
    VectorCheck.Outcome late =
        new VectorCheck.Outcome(null, new StatusRuntimeException(Status.DEADLINE_EXCEEDED), null);
    assertEquals(List.of(), VectorCheck.check(vector("{\"code\":\"DEADLINE_EXCEEDED\"}"), "t", late));
    assertFalse(
        VectorCheck.check(
                vector("{\"code\":\"DEADLINE_EXCEEDED\",\"error_info\":{\"reason\":\"DEADLINE_EXPIRED\"}}"),
                "t",
                late)
            .isEmpty());
  }

  private static JsonObject setupCall(String savePath) {
    JsonObject save = new JsonObject();
    save.addProperty("id", savePath);
    JsonObject call = new JsonObject();
    call.add("save", save);
    return call;
  }

  private static JsonObject vector(String expect) {
    JsonObject v = new JsonObject();
    v.addProperty("name", "t");
    v.add("expect", JsonParser.parseString(expect));
    return v;
  }

  @TestFactory
  Stream<DynamicTest> sharedVectorsAgainstServer() throws Exception {
    String addr = System.getenv("MLSDM_ADDR");
    Assumptions.assumeTrue(
        addr != null && !addr.isEmpty(),
        "MLSDM_ADDR not set: no server to run the shared vectors against "
            + "(tests/vectors/test_polyglot_clients.py starts one and sets it)");
    byte[] raw = new byte[4];
    new SecureRandom().nextBytes(raw);
    String run = HexFormat.of().formatHex(raw);
    ManagedChannel channel = MlsdmClient.channel(addr);
    List<DynamicTest> tests = new ArrayList<>();
    for (JsonObject v : VectorCheck.loadVectors()) {
      tests.add(DynamicTest.dynamicTest(v.get("name").getAsString(), () -> runVector(channel, v, run)));
    }
    return tests.stream().onClose(() -> channel.shutdownNow());
  }

  private static void runVector(ManagedChannel channel, JsonObject v, String run) throws Exception {
    String tenant = v.get("tenant").getAsString() + "-" + LANGUAGE + "-" + run;
    Metadata md = new Metadata();
    md.put(MlsdmClient.TENANT, tenant);
    VectorCheck.metadataOf(v)
        .forEach(
            (k, val) ->
                md.put(Metadata.Key.of(k, Metadata.ASCII_STRING_MARSHALLER), val.replace("${tenant}", tenant)));
    long timeoutMs = v.has("timeout_ms") ? v.get("timeout_ms").getAsLong() : 20_000;
    // setup: earlier calls on the same tenant, each of which must end OK; their
    // saved values fill the later requests and expect.
    List<JsonObject> setup = VectorCheck.setupOf(v);
    Map<String, String> saved = new HashMap<>();
    for (int i = 0; i < setup.size(); i++) {
      Stubs earlier = Stubs.of(channel, timeoutMs, MetadataUtils.newAttachHeadersInterceptor(md));
      String what = v.get("name").getAsString() + ": setup[" + i + "] " + setup.get(i).get("rpc").getAsString();
      Message answer = null;
      try {
        answer = invoke(earlier, request(setup.get(i), saved));
      } catch (StatusRuntimeException e) {
        fail(what + ": expected OK, got " + e.getStatus().getCode() + " (" + e.getMessage() + ")");
      }
      VectorCheck.saveFrom(setup.get(i), answer, saved);
    }
    AtomicReference<Metadata> headers = new AtomicReference<>();
    AtomicReference<Metadata> trailers = new AtomicReference<>();
    Stubs stubs =
        Stubs.of(
            channel,
            timeoutMs,
            MetadataUtils.newAttachHeadersInterceptor(md),
            MetadataUtils.newCaptureMetadataInterceptor(headers, trailers));
    Message response = null;
    Throwable error = null;
    try {
      response = invoke(stubs, request(v, saved));
    } catch (StatusRuntimeException e) {
      error = e;
    }
    // "headers" in the vectors means response metadata: a unary reply carries
    // the server's keys in its trailers.
    Metadata responseMetadata = new Metadata();
    if (headers.get() != null) {
      responseMetadata.merge(headers.get());
    }
    if (trailers.get() != null) {
      responseMetadata.merge(trailers.get());
    }
    List<String> problems =
        VectorCheck.check(
            VectorCheck.expand(v, saved).getAsJsonObject(),
            tenant,
            new VectorCheck.Outcome(response, error, responseMetadata));
    assertEquals(List.of(), problems, v.get("name").getAsString() + ":\n  " + String.join("\n  ", problems));
  }
}

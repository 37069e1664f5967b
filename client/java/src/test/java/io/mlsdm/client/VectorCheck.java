package io.mlsdm.client;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import com.google.gson.JsonPrimitive;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Message;
import com.google.protobuf.util.JsonFormat;
import com.google.rpc.ErrorInfo;
import io.grpc.Metadata;
import io.grpc.Status;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/** The shared-vector comparator for Java: the same rules as the Go, TypeScript and Python runners. */
final class VectorCheck {
  static final Set<String> KNOWN_EXPECT_KEYS =
      Set.of("code", "fields", "non_empty", "headers_non_empty", "headers", "error_info");

  private VectorCheck() {}

  /** One call's outcome: a response or an error, and the response headers. */
  record Outcome(Message response, Throwable error, Metadata headers) {}

  static Path vectorsPath() {
    String override = System.getenv("MLSDM_VECTORS");
    return override != null && !override.isEmpty()
        ? Path.of(override)
        : Path.of("..", "..", "tests", "vectors", "vectors.json");
  }

  static List<JsonObject> loadVectors() throws IOException {
    JsonObject file = JsonParser.parseString(Files.readString(vectorsPath())).getAsJsonObject();
    if (file.get("format").getAsInt() != 1) {
      throw new IllegalStateException("unsupported vectors format in " + vectorsPath());
    }
    List<JsonObject> out = new ArrayList<>();
    file.getAsJsonArray("vectors").forEach(v -> out.add(v.getAsJsonObject()));
    if (out.isEmpty()) {
      throw new IllegalStateException("no vectors in " + vectorsPath());
    }
    return out;
  }

  /** Proto JSON with unpopulated fields included: int64 as strings, enums as names. */
  static JsonElement toJson(Message m) throws InvalidProtocolBufferException {
    return JsonParser.parseString(JsonFormat.printer().alwaysPrintFieldsWithNoPresence().print(m));
  }

  static List<String> subset(JsonElement expected, JsonElement actual, String at, String tenant) {
    List<String> out = new ArrayList<>();
    if (expected.isJsonObject()) {
      if (actual == null || !actual.isJsonObject()) {
        out.add(at + ": expected an object, got " + actual);
        return out;
      }
      JsonObject a = actual.getAsJsonObject();
      for (String key : new TreeSet<>(expected.getAsJsonObject().keySet())) {
        if (!a.has(key)) {
          out.add(at + "." + key + ": missing");
        } else {
          out.addAll(subset(expected.getAsJsonObject().get(key), a.get(key), at + "." + key, tenant));
        }
      }
      return out;
    }
    if (expected.isJsonArray()) {
      JsonArray e = expected.getAsJsonArray();
      if (actual == null || !actual.isJsonArray() || actual.getAsJsonArray().size() != e.size()) {
        out.add(at + ": expected " + e + ", got " + actual);
        return out;
      }
      for (int i = 0; i < e.size(); i++) {
        out.addAll(subset(e.get(i), actual.getAsJsonArray().get(i), at + "[" + i + "]", tenant));
      }
      return out;
    }
    if (expected.isJsonPrimitive() && expected.getAsJsonPrimitive().isNumber()) {
      boolean same =
          actual != null
              && actual.isJsonPrimitive()
              && actual.getAsJsonPrimitive().isNumber()
              && Math.abs(actual.getAsDouble() - expected.getAsDouble()) <= 1e-9;
      if (!same) {
        out.add(at + ": expected " + expected + ", got " + actual);
      }
      return out;
    }
    JsonElement want = expected;
    if (expected.isJsonPrimitive() && expected.getAsJsonPrimitive().isString()) {
      want = new JsonPrimitive(expected.getAsString().replace("${tenant}", tenant));
    }
    if (!want.equals(actual)) {
      out.add(at + ": expected " + want + ", got " + actual);
    }
    return out;
  }

  /** The value at a dotted path; a segment that is a number indexes a list. */
  private static JsonElement lookup(JsonElement doc, String dotted) {
    JsonElement cur = doc;
    for (String part : dotted.split("\\.")) {
      if (cur != null && cur.isJsonArray() && part.matches("\\d+")) {
        JsonArray list = cur.getAsJsonArray();
        int i = Integer.parseInt(part);
        if (i >= list.size()) {
          return null;
        }
        cur = list.get(i);
      } else if (cur != null && cur.isJsonObject() && cur.getAsJsonObject().has(part)) {
        cur = cur.getAsJsonObject().get(part);
      } else {
        return null;
      }
    }
    return cur;
  }

  private static boolean nonEmpty(JsonElement v) {
    if (v == null || v.isJsonNull()) {
      return false;
    }
    if (v.isJsonArray()) {
      return v.getAsJsonArray().size() > 0;
    }
    if (v.isJsonObject()) {
      return !v.getAsJsonObject().keySet().isEmpty();
    }
    return !(v.getAsJsonPrimitive().isString() && v.getAsString().isEmpty());
  }

  static List<String> check(JsonObject vector, String tenant, Outcome outcome)
      throws InvalidProtocolBufferException {
    JsonObject expect = vector.getAsJsonObject("expect");
    List<String> problems = new ArrayList<>();
    for (String key : expect.keySet()) {
      if (!KNOWN_EXPECT_KEYS.contains(key)) {
        problems.add("unknown expect key \"" + key + "\"");
      }
    }
    JsonElement code = expect.get("code");
    if (code == null || !code.isJsonPrimitive()) {
      problems.add("expect.code missing or not a string");
      return problems;
    }
    String got = outcome.error() == null ? "OK" : Status.fromThrowable(outcome.error()).getCode().name();
    if (!got.equals(code.getAsString())) {
      problems.add("code: expected " + code.getAsString() + ", got " + got + " (" + outcome.error() + ")");
      return problems;
    }
    JsonElement response = outcome.response() == null ? null : toJson(outcome.response());
    if (expect.has("fields")) {
      if (response == null) {
        problems.add("fields: no response");
      } else {
        problems.addAll(subset(expect.get("fields"), response, "response", tenant));
      }
    }
    if (expect.has("non_empty")) {
      for (JsonElement p : expect.getAsJsonArray("non_empty")) {
        JsonElement val = lookup(response, p.getAsString());
        if (!nonEmpty(val)) {
          problems.add("response." + p.getAsString() + ": expected non-empty, got " + val);
        }
      }
    }
    if (expect.has("headers_non_empty")) {
      for (JsonElement k : expect.getAsJsonArray("headers_non_empty")) {
        String val =
            outcome.headers() == null
                ? null
                : outcome.headers().get(Metadata.Key.of(k.getAsString(), Metadata.ASCII_STRING_MARSHALLER));
        if (val == null || val.isEmpty()) {
          problems.add("header " + k.getAsString() + ": expected non-empty, got " + val);
        }
      }
    }
    if (expect.has("headers")) {
      for (String k : new TreeSet<>(expect.getAsJsonObject("headers").keySet())) {
        String want = expect.getAsJsonObject("headers").get(k).getAsString().replace("${tenant}", tenant);
        Iterable<String> vals =
            outcome.headers() == null
                ? List.of()
                : outcome.headers().getAll(Metadata.Key.of(k, Metadata.ASCII_STRING_MARSHALLER));
        List<String> gotValues = new ArrayList<>();
        if (vals != null) {
          vals.forEach(gotValues::add);
        }
        if (!gotValues.equals(List.of(want))) {
          problems.add("header " + k + ": expected \"" + want + "\", got " + gotValues);
        }
      }
    }
    if (expect.has("error_info")) {
      List<ErrorInfo> infos =
          outcome.error() == null ? List.of() : MlsdmClient.errorInfos(outcome.error());
      if (infos.size() != 1) {
        problems.add("error_info: expected exactly one ErrorInfo, got " + infos.size());
      } else {
        problems.addAll(subset(expect.get("error_info"), toJson(infos.get(0)), "error_info", tenant));
      }
    }
    return problems;
  }

  /** {@code value} with every ${name} of {@code saved} replaced in its strings. */
  static JsonElement expand(JsonElement value, Map<String, String> saved) {
    if (value == null || saved.isEmpty()) {
      return value;
    }
    if (value.isJsonObject()) {
      JsonObject out = new JsonObject();
      value.getAsJsonObject().entrySet().forEach(e -> out.add(e.getKey(), expand(e.getValue(), saved)));
      return out;
    }
    if (value.isJsonArray()) {
      JsonArray out = new JsonArray();
      value.getAsJsonArray().forEach(e -> out.add(expand(e, saved)));
      return out;
    }
    if (value.isJsonPrimitive() && value.getAsJsonPrimitive().isString()) {
      String text = value.getAsString();
      for (Map.Entry<String, String> e : saved.entrySet()) {
        text = text.replace("${" + e.getKey() + "}", e.getValue());
      }
      return new JsonPrimitive(text);
    }
    return value;
  }

  /**
   * Adds to {@code saved} the values a setup call's "save" names, read from its response; each must
   * be a non-empty string.
   */
  static void saveFrom(JsonObject call, Message response, Map<String, String> saved)
      throws InvalidProtocolBufferException {
    if (!call.has("save")) {
      return;
    }
    JsonElement doc = toJson(response);
    for (Map.Entry<String, JsonElement> e : call.getAsJsonObject("save").entrySet()) {
      JsonElement val = lookup(doc, e.getValue().getAsString());
      if (val == null || !val.isJsonPrimitive() || !val.getAsJsonPrimitive().isString() || val.getAsString().isEmpty()) {
        throw new IllegalStateException(
            "save " + e.getKey() + ": response." + e.getValue().getAsString() + " is " + val + ", not a non-empty string");
      }
      saved.put(e.getKey(), val.getAsString());
    }
  }

  /** The vector's setup calls ({"rpc", "request"}), made first on the same tenant; none when absent. */
  static List<JsonObject> setupOf(JsonObject vector) {
    List<JsonObject> out = new ArrayList<>();
    if (vector.has("setup")) {
      vector.getAsJsonArray("setup").forEach(c -> out.add(c.getAsJsonObject()));
    }
    return out;
  }

  static Map<String, String> metadataOf(JsonObject vector) {
    Map<String, String> out = new java.util.TreeMap<>();
    if (vector.has("metadata")) {
      vector.getAsJsonObject("metadata").entrySet().forEach(e -> out.put(e.getKey(), e.getValue().getAsString()));
    }
    return out;
  }
}

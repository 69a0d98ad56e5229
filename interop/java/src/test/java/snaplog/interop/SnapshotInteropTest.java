package snaplog.interop;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.stream.Stream;
import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.message.BinaryMessageDecoder;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * Reads values written by snaplog's Go AvroCodec with the Apache Avro Java library.
 *
 * <p>The directory named by the system property {@code snaplog.snapshots} holds pairs of files:
 * {@code NAME.avro}, a value as written to Kafka (Avro single-object encoding), and {@code
 * NAME.json}, which names the schema files it was written with and gives the expected field
 * values:
 *
 * <pre>
 * {"schema": "snapshot.avsc", "state_schema": "order_state.avsc", "expected": {...}}
 * {"schema": "checkpoint.avsc", "expected": {...}}
 * </pre>
 *
 * <p>The writer schema is rebuilt from the .avsc files in the directory named by {@code
 * snaplog.schemas} alone: with a state schema, by the composition rule of snapshot.avsc (the type
 * of the field "state", the placeholder record snaplog.State, replaced by the state schema as a
 * JSON value); without, the schema file as is. Values are compared field by field, following the
 * writer schema: every field of the record must be in the expected values and no other. Logical
 * types are not converted: timestamps compare as their long value, uuids as strings.
 */
class SnapshotInteropTest {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final String STATE_FIELD = "state";
  private static final String PLACEHOLDER = "snaplog.State";

  @TestFactory
  Stream<DynamicTest> javaReadsEveryValue() throws IOException {
    Path values = directory("snaplog.snapshots");
    Path schemas = directory("snaplog.schemas");
    List<Path> avro = new ArrayList<>();
    try (Stream<Path> files = Files.list(values)) {
      for (Path f : (Iterable<Path>) files.sorted()::iterator) {
        String name = f.getFileName().toString();
        if (name.endsWith(".avro")) {
          assertTrue(Files.exists(sidecar(f)), "no " + sidecar(f).getFileName() + " beside " + name);
          avro.add(f);
        } else if (name.endsWith(".json")) {
          Path value = f.resolveSibling(name.substring(0, name.length() - ".json".length()) + ".avro");
          assertTrue(Files.exists(value), "no " + value.getFileName() + " beside " + name);
        } else {
          fail("unexpected file " + f);
        }
      }
    }
    assertFalse(avro.isEmpty(), "no .avro files in " + values);
    return avro.stream()
        .map(f -> DynamicTest.dynamicTest(f.getFileName().toString(), () -> check(f, schemas)));
  }

  private static Path directory(String property) {
    String dir = System.getProperty(property);
    assertNotNull(dir, "system property " + property + " is not set");
    Path p = Path.of(dir);
    assertTrue(Files.isDirectory(p), property + "=" + dir + " is not a directory");
    return p;
  }

  private static Path sidecar(Path avro) {
    String name = avro.getFileName().toString();
    return avro.resolveSibling(name.substring(0, name.length() - ".avro".length()) + ".json");
  }

  private static void check(Path file, Path schemas) throws IOException {
    JsonNode side = JSON.readTree(sidecar(file).toFile());
    JsonNode expected = side.get("expected");
    assertNotNull(expected, "sidecar has no \"expected\"");
    Schema writer = writerSchema(schemas, side.get("schema").asText(), side.path("state_schema").asText(null));

    byte[] b = Files.readAllBytes(file);
    assertTrue(b.length >= 10, b.length + " bytes, shorter than the single-object header");
    assertEquals((byte) 0xC3, b[0], "marker byte 0");
    assertEquals((byte) 0x01, b[1], "marker byte 1");
    long fingerprint = ByteBuffer.wrap(b, 2, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
    assertEquals(
        SchemaNormalization.parsingFingerprint64(writer),
        fingerprint,
        "header fingerprint is not the parsing fingerprint of the rebuilt writer schema");

    BinaryDecoder in = DecoderFactory.get().binaryDecoder(b, 10, b.length - 10, null);
    GenericRecord record = new GenericDatumReader<GenericRecord>(writer).read(null, in);
    assertTrue(in.isEnd(), "bytes left after the record");
    assertMatches(writer, record, expected, "");

    // Avro's own single-object decoder agrees.
    GenericRecord again = new BinaryMessageDecoder<GenericRecord>(GenericData.get(), writer).decode(b);
    assertEquals(record, again, "BinaryMessageDecoder read another record");
  }

  /** Rebuilds a writer schema from the .avsc files, composing it when a state schema is given. */
  private static Schema writerSchema(Path dir, String schemaFile, String stateFile) throws IOException {
    String text = Files.readString(dir.resolve(schemaFile), StandardCharsets.UTF_8);
    if (stateFile == null) {
      return new Schema.Parser().parse(text);
    }
    ObjectNode envelope = (ObjectNode) JSON.readTree(text);
    JsonNode state = JSON.readTree(Files.readString(dir.resolve(stateFile), StandardCharsets.UTF_8));
    int replaced = 0;
    for (JsonNode f : envelope.get("fields")) {
      if (f.get("name").asText().equals(STATE_FIELD)) {
        JsonNode placeholder = f.get("type");
        assertEquals(
            PLACEHOLDER,
            envelope.get("namespace").asText() + "." + placeholder.get("name").asText(),
            "type of the state field");
        ((ObjectNode) f).set("type", state);
        replaced++;
      }
    }
    assertEquals(1, replaced, "state fields in " + schemaFile);
    return new Schema.Parser().parse(envelope.toString());
  }

  private static void assertMatches(Schema s, Object v, JsonNode want, String path) {
    String where = path.isEmpty() ? "record" : path;
    switch (s.getType()) {
      case RECORD -> {
        assertTrue(want.isObject(), where + ": expected value is not an object: " + want);
        GenericRecord r = (GenericRecord) v;
        TreeSet<String> fields = new TreeSet<>();
        s.getFields().forEach(f -> fields.add(f.name()));
        TreeSet<String> wanted = new TreeSet<>();
        want.fieldNames().forEachRemaining(wanted::add);
        assertEquals(wanted, fields, where + ": fields");
        for (Schema.Field f : s.getFields()) {
          assertMatches(f.schema(), r.get(f.pos()), want.get(f.name()), path.isEmpty() ? f.name() : path + "." + f.name());
        }
      }
      case ARRAY -> {
        assertTrue(want.isArray(), where + ": expected value is not an array: " + want);
        List<?> a = (List<?>) v;
        assertEquals(want.size(), a.size(), where + ": items");
        for (int i = 0; i < a.size(); i++) {
          assertMatches(s.getElementType(), a.get(i), want.get(i), path + "[" + i + "]");
        }
      }
      case MAP -> {
        assertTrue(want.isObject(), where + ": expected value is not an object: " + want);
        Map<?, ?> m = (Map<?, ?>) v;
        assertEquals(want.size(), m.size(), where + ": entries");
        for (Map.Entry<?, ?> e : m.entrySet()) {
          String k = e.getKey().toString();
          assertTrue(want.has(k), where + ": unexpected key " + k);
          assertMatches(s.getValueType(), e.getValue(), want.get(k), path + "[" + k + "]");
        }
      }
      case UNION -> {
        int i = GenericData.get().resolveUnion(s, v);
        assertMatches(s.getTypes().get(i), v, want, path);
      }
      case NULL -> {
        assertTrue(want.isNull(), where + ": got null, want " + want);
        assertNull(v, where);
      }
      case BOOLEAN -> {
        assertTrue(want.isBoolean(), where + ": expected value is not a boolean: " + want);
        assertEquals(want.booleanValue(), v, where);
      }
      case INT -> {
        assertTrue(want.canConvertToInt() && want.isIntegralNumber(), where + ": expected value is not an int: " + want);
        assertEquals(want.intValue(), (Integer) v, where);
      }
      case LONG -> {
        assertTrue(want.canConvertToLong() && want.isIntegralNumber(), where + ": expected value is not a long: " + want);
        assertEquals(want.longValue(), (Long) v, where);
      }
      case FLOAT -> {
        assertTrue(want.isNumber(), where + ": expected value is not a number: " + want);
        assertEquals(want.floatValue(), (Float) v, where);
      }
      case DOUBLE -> {
        assertTrue(want.isNumber(), where + ": expected value is not a number: " + want);
        assertEquals(want.doubleValue(), (Double) v, where);
      }
      case STRING, ENUM -> {
        assertTrue(want.isTextual(), where + ": expected value is not a string: " + want);
        assertEquals(want.textValue(), v.toString(), where);
      }
      case BYTES -> {
        assertTrue(want.isTextual(), where + ": expected value is not base64 text: " + want);
        ByteBuffer buf = ((ByteBuffer) v).duplicate();
        byte[] got = new byte[buf.remaining()];
        buf.get(got);
        assertArrayEquals(Base64.getDecoder().decode(want.textValue()), got, where);
      }
      case FIXED -> {
        assertTrue(want.isTextual(), where + ": expected value is not base64 text: " + want);
        assertArrayEquals(Base64.getDecoder().decode(want.textValue()), ((GenericData.Fixed) v).bytes(), where);
      }
      default -> fail(where + ": type " + s.getType());
    }
  }
}

// A Java client generated from proto/ (protoc's Java output and grpc-java's protoc plugin, grpc-java 1.41 on netty)
// calls VectorService, BackupService and ListService through the gateway. tests/generated_clients.rs generates the
// code and compiles this file against Debian's jars, offline.
// Usage: java Client HOST:PORT INDEX
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Struct;
import com.google.protobuf.Value;
import com.google.rpc.RetryInfo;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;
import io.grpc.stub.MetadataUtils;
import io.pinecone.proto.FetchRequest;
import io.pinecone.proto.FetchResponse;
import io.pinecone.proto.QueryRequest;
import io.pinecone.proto.UpsertRequest;
import io.pinecone.proto.UpsertResponse;
import io.pinecone.proto.Vector;
import io.pinecone.proto.VectorServiceGrpc;
import java.util.Iterator;
import java.util.concurrent.TimeUnit;
import pinecone_gateway.v1.BackupServiceGrpc;
import pinecone_gateway.v1.BackupServiceOuterClass.Backup;
import pinecone_gateway.v1.BackupServiceOuterClass.CreateBackupRequest;
import pinecone_gateway.v1.BackupServiceOuterClass.ListBackupsResponse;
import pinecone_gateway.v1.BackupServiceOuterClass.ListIndexBackupsRequest;
import pinecone_gateway.v1.ListServiceGrpc;
import pinecone_gateway.v1.ListServiceOuterClass.ListAllRequest;
import pinecone_gateway.v1.ListServiceOuterClass.ListAllResponse;

public class Client {
  static int checks = 0;

  static void check(boolean ok, String what) {
    if (!ok) {
      System.err.println("FAILED: " + what);
      System.exit(1);
    }
    checks++;
  }

  static final Metadata.Key<String> PUSHBACK =
      Metadata.Key.of("grpc-retry-pushback-ms", Metadata.ASCII_STRING_MARSHALLER);

  /** The gateway's retry advice on a RESOURCE_EXHAUSTED error: RetryInfo's delay in ms, and grpc-retry-pushback-ms. */
  static long[] retryAdvice(StatusRuntimeException e) throws InvalidProtocolBufferException {
    long delayMs = -1;
    com.google.rpc.Status details = StatusProto.fromThrowable(e);
    if (details != null) {
      for (com.google.protobuf.Any any : details.getDetailsList()) {
        if (any.is(RetryInfo.class)) {
          RetryInfo info = any.unpack(RetryInfo.class);
          delayMs = info.getRetryDelay().getSeconds() * 1000 + info.getRetryDelay().getNanos() / 1_000_000;
        }
      }
    }
    Metadata trailers = Status.trailersFromThrowable(e);
    String pushback = trailers == null ? null : trailers.get(PUSHBACK);
    return new long[] {delayMs, pushback == null ? -1 : Long.parseLong(pushback)};
  }

  static Metadata headers(String... pairs) {
    Metadata md = new Metadata();
    for (int i = 0; i < pairs.length; i += 2) {
      md.put(Metadata.Key.of(pairs[i], Metadata.ASCII_STRING_MARSHALLER), pairs[i + 1]);
    }
    return md;
  }

  public static void main(String[] args) throws Exception {
    String host = args[0];
    String index = args[1];
    ManagedChannel channel = ManagedChannelBuilder.forTarget(host).usePlaintext().build();
    // Routing metadata: the index every VectorService and ListService call goes to.
    Metadata routed = headers("pinecone-index", index);
    VectorServiceGrpc.VectorServiceBlockingStub vectors = VectorServiceGrpc.newBlockingStub(channel)
        .withInterceptors(MetadataUtils.newAttachHeadersInterceptor(routed));
    ListServiceGrpc.ListServiceBlockingStub lists = ListServiceGrpc.newBlockingStub(channel)
        .withInterceptors(MetadataUtils.newAttachHeadersInterceptor(routed));
    BackupServiceGrpc.BackupServiceBlockingStub backups = BackupServiceGrpc.newBlockingStub(channel);

    Struct genre = Struct.newBuilder().putFields("genre", Value.newBuilder().setStringValue("comedy").build()).build();
    UpsertRequest.Builder up = UpsertRequest.newBuilder().setNamespace("java");
    for (int i = 0; i < 120; i++) {
      up.addVectors(Vector.newBuilder().setId("j" + i).addValues(1).addValues(2).addValues(3).addValues(i)
          .setMetadata(genre));
    }
    UpsertResponse upserted = vectors.withDeadlineAfter(10, TimeUnit.SECONDS).upsert(up.build());
    check(upserted.getUpsertedCount() == 120, "upserted " + upserted.getUpsertedCount());

    FetchRequest fetch = FetchRequest.newBuilder().addIds("j1").addIds("missing").setNamespace("java").build();
    FetchResponse f = vectors.withDeadlineAfter(10, TimeUnit.SECONDS).fetch(fetch);
    check(f.getVectorsCount() == 1
        && f.getVectorsOrThrow("j1").getMetadata().getFieldsOrThrow("genre").getStringValue().equals("comedy"),
        "fetch: " + f);

    int ids = 0;
    Iterator<ListAllResponse> pages =
        lists.withDeadlineAfter(10, TimeUnit.SECONDS).listAll(ListAllRequest.newBuilder().setNamespace("java").setPageSize(50).build());
    while (pages.hasNext()) {
      ids += pages.next().getIdsCount();
    }
    check(ids == 120, "ListAll streamed " + ids);

    Backup b = backups.createBackup(CreateBackupRequest.newBuilder().setIndexName(index).setName("java-client").build());
    check(b.getSourceIndexName().equals(index), "backup of " + b.getSourceIndexName());
    ListBackupsResponse listed = backups.listIndexBackups(ListIndexBackupsRequest.newBuilder().setIndexName(index).setLimit(5).build());
    check(listed.getBackupsList().stream().anyMatch(x -> x.getBackupId().equals(b.getBackupId())), "backup listed");

    try {
      vectors.query(QueryRequest.newBuilder().setNamespace("java").setTopK(0).addVector(1).addVector(2).addVector(3).addVector(4).build());
      check(false, "top_k 0 was accepted");
    } catch (StatusRuntimeException e) {
      check(e.getStatus().getCode() == Status.Code.INVALID_ARGUMENT, "top_k 0: " + e.getStatus());
    }

    // A deadline the call cannot meet ends it with DEADLINE_EXCEEDED.
    try {
      vectors.withDeadlineAfter(1, TimeUnit.NANOSECONDS).fetch(fetch);
      check(false, "an expired deadline was met");
    } catch (StatusRuntimeException e) {
      check(e.getStatus().getCode() == Status.Code.DEADLINE_EXCEEDED, "an expired deadline: " + e.getStatus());
    }

    // The gateway is started with a quota of 1 call/s for the caller `guide`: the second of two calls is refused with
    // retry advice.
    VectorServiceGrpc.VectorServiceBlockingStub guide = vectors
        .withInterceptors(MetadataUtils.newAttachHeadersInterceptor(headers("x-caller", "guide")))
        .withDeadlineAfter(5, TimeUnit.SECONDS);
    FetchRequest one = FetchRequest.newBuilder().addIds("j1").setNamespace("java").build();
    guide.fetch(one);
    try {
      guide.fetch(one);
      check(false, "the second call within a second was not refused");
    } catch (StatusRuntimeException e) {
      check(e.getStatus().getCode() == Status.Code.RESOURCE_EXHAUSTED, "refused with " + e.getStatus());
      long[] advice = retryAdvice(e);
      check(advice[0] > 0 && advice[0] <= 1000, "RetryInfo " + advice[0] + " ms");
      check(advice[1] > 0 && advice[1] <= 1000, "grpc-retry-pushback-ms " + advice[1]);
    }
    channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    System.out.println("java client (grpc-java): " + checks + " checks passed");
  }
}

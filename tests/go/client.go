// A Go client generated from proto/ (protoc-gen-go and protoc-gen-go-grpc, grpc-go) calls VectorService,
// BackupService and ListService through the gateway. tests/generated_clients.rs generates the code and builds this
// file with Debian's Go packages, offline (GOPATH mode).
// Usage: client HOST INDEX
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	gw "gwclient/pb/gateway"
	pc "gwclient/pb/pinecone"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
)

var checks = 0

func check(ok bool, what string, args ...interface{}) {
	if !ok {
		fmt.Fprintf(os.Stderr, "FAILED: "+what+"\n", args...)
		os.Exit(1)
	}
	checks++
}

func must(err error, what string) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAILED: %s: %v\n", what, err)
		os.Exit(1)
	}
}

// retryAdvice reads the gateway's retry advice from a RESOURCE_EXHAUSTED error: a google.rpc.RetryInfo in the
// status details, and the grpc-retry-pushback-ms trailer.
func retryAdvice(err error, trailer metadata.MD) (delay time.Duration, pushbackMs int) {
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.RetryInfo); ok {
			delay = time.Duration(info.GetRetryDelay().GetSeconds())*time.Second +
				time.Duration(info.GetRetryDelay().GetNanos())
		}
	}
	if v := trailer.Get("grpc-retry-pushback-ms"); len(v) > 0 {
		pushbackMs, _ = strconv.Atoi(v[0])
	}
	return delay, pushbackMs
}

func main() {
	host, index := os.Args[1], os.Args[2]
	conn, err := grpc.Dial(host, grpc.WithInsecure())
	must(err, "dial")
	defer conn.Close()
	vectors := pc.NewVectorServiceClient(conn)
	backups := gw.NewBackupServiceClient(conn)
	lists := gw.NewListServiceClient(conn)

	// Routing metadata: the index every VectorService and ListService call goes to.
	routed := metadata.AppendToOutgoingContext(context.Background(), "pinecone-index", index)
	ctx, cancel := context.WithTimeout(routed, 10*time.Second)
	defer cancel()

	genre, _ := structpb.NewStruct(map[string]interface{}{"genre": "comedy"})
	var vs []*pc.Vector
	for i := 0; i < 120; i++ {
		vs = append(vs, &pc.Vector{Id: fmt.Sprintf("g%d", i), Values: []float32{1, 2, 3, float32(i)}, Metadata: genre})
	}
	up, err := vectors.Upsert(ctx, &pc.UpsertRequest{Namespace: "go", Vectors: vs})
	must(err, "upsert")
	check(up.UpsertedCount == 120, "upserted %d", up.UpsertedCount)

	f, err := vectors.Fetch(ctx, &pc.FetchRequest{Ids: []string{"g1", "missing"}, Namespace: "go"})
	must(err, "fetch")
	check(len(f.Vectors) == 1 && f.Vectors["g1"].Metadata.Fields["genre"].GetStringValue() == "comedy", "fetch: %v", f.Vectors)

	size := uint32(50)
	stream, err := lists.ListAll(ctx, &gw.ListAllRequest{Namespace: "go", PageSize: &size})
	must(err, "ListAll")
	ids := 0
	for {
		page, err := stream.Recv()
		if err == io.EOF {
			break
		}
		must(err, "ListAll page")
		ids += len(page.Ids)
	}
	check(ids == 120, "ListAll streamed %d", ids)

	name := "go-client"
	b, err := backups.CreateBackup(context.Background(), &gw.CreateBackupRequest{IndexName: index, Name: &name})
	must(err, "create backup")
	check(b.SourceIndexName == index, "backup of %s", b.SourceIndexName)
	limit := uint32(5)
	listed, err := backups.ListIndexBackups(context.Background(), &gw.ListIndexBackupsRequest{IndexName: index, Limit: &limit})
	must(err, "list backups")
	found := false
	for _, x := range listed.Backups {
		found = found || x.BackupId == b.BackupId
	}
	check(found, "backup %s not listed", b.BackupId)

	_, err = vectors.Query(ctx, &pc.QueryRequest{Namespace: "go", TopK: 0, Vector: []float32{1, 2, 3, 4}})
	check(status.Code(err) == codes.InvalidArgument, "top_k 0: %v", err)

	// A deadline the call cannot meet ends it with DEADLINE_EXCEEDED.
	short, cancelShort := context.WithTimeout(routed, time.Nanosecond)
	_, err = vectors.Fetch(short, &pc.FetchRequest{Ids: []string{"g1"}, Namespace: "go"})
	cancelShort()
	check(status.Code(err) == codes.DeadlineExceeded, "an expired deadline: %v", err)

	// The gateway is started with a quota of 1 call/s for the caller `guide`: the second of two calls is refused
	// with retry advice.
	guide := metadata.AppendToOutgoingContext(ctx, "x-caller", "guide")
	_, err = vectors.Fetch(guide, &pc.FetchRequest{Ids: []string{"g1"}, Namespace: "go"})
	must(err, "the first guided fetch")
	var trailer metadata.MD
	_, err = vectors.Fetch(guide, &pc.FetchRequest{Ids: []string{"g1"}, Namespace: "go"}, grpc.Trailer(&trailer))
	check(status.Code(err) == codes.ResourceExhausted, "the second call within a second: %v", err)
	delay, pushback := retryAdvice(err, trailer)
	check(delay > 0 && delay <= time.Second, "RetryInfo %v", delay)
	check(pushback > 0 && pushback <= 1000, "grpc-retry-pushback-ms %d", pushback)

	fmt.Printf("go client (grpc-go): %d checks passed\n", checks)
}

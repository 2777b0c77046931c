// A backend team's Go client of the ClearAIR mesh: grpc-go with stubs generated from proto/
// (buf generate with protoc-gen-go and protoc-gen-go-grpc), run against a live mesh by
// tests/go/run.sh, which starts `clearair up` and generates the stubs.
//
// Environment: CLEARAIR_ENDPOINT (the orchestrator, host:port), CLEARAIR_PHOTO (a photo).
package client_test

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/png"
	"math"
	"os"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/status"

	clearairv1 "github.com/clearair-mesh/clearair-mesh/tests/go/gen/clearair/v1"
)

const maxMessage = 64 << 20

func connect(t *testing.T) *grpc.ClientConn {
	t.Helper()
	endpoint := os.Getenv("CLEARAIR_ENDPOINT")
	if endpoint == "" {
		t.Fatal("CLEARAIR_ENDPOINT is not set: run tests/go/run.sh, which starts the mesh")
	}
	conn, err := grpc.NewClient(endpoint,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessage), grpc.MaxCallSendMsgSize(maxMessage)))
	if err != nil {
		t.Fatalf("dial %s: %v", endpoint, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func photo(t *testing.T) ([]byte, image.Config) {
	t.Helper()
	data, err := os.ReadFile(os.Getenv("CLEARAIR_PHOTO"))
	if err != nil {
		t.Fatalf("CLEARAIR_PHOTO: %v", err)
	}
	config, _, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("the photo does not decode: %v", err)
	}
	return data, config
}

func callContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// checkSummary pins what every priors' summary must satisfy.
func checkSummary(t *testing.T, summary *clearairv1.PriorSummary) {
	t.Helper()
	if summary == nil {
		t.Fatal("no priors' summary")
	}
	if summary.QualityScore < 1 || summary.QualityScore > 5 {
		t.Errorf("quality score %v outside 1..5", summary.QualityScore)
	}
	if summary.QualityLevel == clearairv1.QualityLevel_QUALITY_LEVEL_UNSPECIFIED {
		t.Error("quality level unspecified")
	}
	kinds := map[clearairv1.DegradationKind]float32{}
	best, dominant := float32(-1), clearairv1.DegradationKind_DEGRADATION_KIND_UNSPECIFIED
	for _, p := range summary.Degradations {
		if p.Probability < 0 || p.Probability > 1 {
			t.Errorf("%v probability %v outside [0, 1]", p.Kind, p.Probability)
		}
		kinds[p.Kind] = p.Probability
		if p.Probability > best {
			best, dominant = p.Probability, p.Kind
		}
	}
	for _, kind := range []clearairv1.DegradationKind{
		clearairv1.DegradationKind_DEGRADATION_KIND_NOISE,
		clearairv1.DegradationKind_DEGRADATION_KIND_HAZE,
		clearairv1.DegradationKind_DEGRADATION_KIND_RAIN,
		clearairv1.DegradationKind_DEGRADATION_KIND_BLUR,
		clearairv1.DegradationKind_DEGRADATION_KIND_LOW_LIGHT,
	} {
		if _, ok := kinds[kind]; !ok {
			t.Errorf("no probability for %v: %v", kind, summary.Degradations)
		}
	}
	if summary.DominantDegradation != dominant {
		t.Errorf("dominant degradation %v, but the most probable is %v", summary.DominantDegradation, dominant)
	}
	if summary.MaskCount < 1 || summary.MaskCount > 16 {
		t.Errorf("mask count %d outside 1..16", summary.MaskCount)
	}
}

func TestRestoreReturnsAPNGOfTheSameSizeAndThePriorsSummary(t *testing.T) {
	client := clearairv1.NewClearAirClient(connect(t))
	data, input := photo(t)

	response, err := client.Restore(callContext(t), &clearairv1.ClearAirRestoreRequest{
		Image: &clearairv1.EncodedImage{Data: data},
	})
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got := response.GetImage().GetMediaType(); got != "image/png" {
		t.Errorf("media type %q, want image/png", got)
	}
	restored, err := png.Decode(bytes.NewReader(response.GetImage().GetData()))
	if err != nil {
		t.Fatalf("the restored image is not a PNG: %v", err)
	}
	if size := restored.Bounds().Size(); size.X != input.Width || size.Y != input.Height {
		t.Errorf("restored %v, input %dx%d", size, input.Width, input.Height)
	}
	if response.Width != uint32(input.Width) || response.Height != uint32(input.Height) {
		t.Errorf("reported %dx%d, input %dx%d", response.Width, response.Height, input.Width, input.Height)
	}
	if len(response.Fallbacks) != 0 {
		t.Errorf("priors fell back: %v", response.Fallbacks)
	}
	checkSummary(t, response.Priors)
	stages := make([]string, 0, len(response.Timings))
	for _, timing := range response.Timings {
		if timing.Milliseconds < 0 {
			t.Errorf("stage %s took %v ms", timing.Stage, timing.Milliseconds)
		}
		stages = append(stages, timing.Stage)
	}
	if len(stages) == 0 || stages[len(stages)-1] != "total" {
		t.Errorf("timings %v should end with total", stages)
	}
}

func TestAnalyzeReturnsTheSamePriorsAsRestoreAndTheFullPriorsOnRequest(t *testing.T) {
	client := clearairv1.NewClearAirClient(connect(t))
	data, input := photo(t)
	ctx := callContext(t)

	restored, err := client.Restore(ctx, &clearairv1.ClearAirRestoreRequest{Image: &clearairv1.EncodedImage{Data: data}})
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	analysis, err := client.Analyze(ctx, &clearairv1.AnalyzeRequest{
		Image: &clearairv1.EncodedImage{Data: data}, IncludePriors: true,
	})
	if err != nil {
		t.Fatalf("Analyze: %v", err)
	}
	checkSummary(t, analysis.Priors)
	if d := math.Abs(float64(analysis.Priors.QualityScore - restored.Priors.QualityScore)); d > 1e-4 {
		t.Errorf("Analyze quality %v, Restore %v", analysis.Priors.QualityScore, restored.Priors.QualityScore)
	}
	masks := analysis.GetMasks()
	if masks.GetCount() != analysis.Priors.MaskCount {
		t.Errorf("%d masks, summary says %d", masks.GetCount(), analysis.Priors.MaskCount)
	}
	if masks.GetWidth() != uint32(input.Width) || masks.GetHeight() != uint32(input.Height) {
		t.Errorf("masks %dx%d, image %dx%d", masks.GetWidth(), masks.GetHeight(), input.Width, input.Height)
	}
	bits := int(masks.GetCount()) * input.Width * input.Height
	if len(masks.GetBits()) != (bits+7)/8 {
		t.Errorf("%d mask bytes for %d bits", len(masks.GetBits()), bits)
	}
	if n := len(analysis.GetDegradation().GetContent()); n != 512 {
		t.Errorf("F_c has %d floats, want 512", n)
	}
	if n := len(analysis.GetDegradation().GetDegradation()); n != 512 {
		t.Errorf("F_d has %d floats, want 512", n)
	}
	if n := len(analysis.GetQuality().GetFeatures()); n == 0 {
		t.Error("F_q is empty")
	}
}

func TestBadInputIsInvalidArgument(t *testing.T) {
	client := clearairv1.NewClearAirClient(connect(t))
	_, err := client.Restore(callContext(t), &clearairv1.ClearAirRestoreRequest{
		Image: &clearairv1.EncodedImage{Data: []byte("definitely not an image")},
	})
	if got := status.Code(err); got != codes.InvalidArgument {
		t.Fatalf("garbage bytes: %v (%v), want InvalidArgument", got, err)
	}
}

func TestHealthIsServing(t *testing.T) {
	response, err := healthpb.NewHealthClient(connect(t)).Check(callContext(t), &healthpb.HealthCheckRequest{
		Service: "clearair.v1.ClearAir",
	})
	if err != nil {
		t.Fatalf("health: %v", err)
	}
	if response.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("status %v", response.Status)
	}
}

// Both reflection versions list the public service: ghz and grpcurl ask v1 first and fall
// back to v1alpha, which older tools use alone.
func TestReflectionV1AndV1alphaListThePublicService(t *testing.T) {
	conn := connect(t)
	ctx := callContext(t)

	v1, err := reflectionv1.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatalf("reflection v1: %v", err)
	}
	if err := v1.Send(&reflectionv1.ServerReflectionRequest{
		MessageRequest: &reflectionv1.ServerReflectionRequest_ListServices{},
	}); err != nil {
		t.Fatalf("reflection v1 send: %v", err)
	}
	reply, err := v1.Recv()
	if err != nil {
		t.Fatalf("reflection v1 receive: %v", err)
	}
	var v1Names []string
	for _, service := range reply.GetListServicesResponse().GetService() {
		v1Names = append(v1Names, service.Name)
	}

	v1alpha, err := reflectionv1alpha.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatalf("reflection v1alpha: %v", err)
	}
	if err := v1alpha.Send(&reflectionv1alpha.ServerReflectionRequest{
		MessageRequest: &reflectionv1alpha.ServerReflectionRequest_ListServices{},
	}); err != nil {
		t.Fatalf("reflection v1alpha send: %v", err)
	}
	alphaReply, err := v1alpha.Recv()
	if err != nil {
		t.Fatalf("reflection v1alpha receive: %v", err)
	}
	var alphaNames []string
	for _, service := range alphaReply.GetListServicesResponse().GetService() {
		alphaNames = append(alphaNames, service.Name)
	}

	for name, names := range map[string][]string{"v1": v1Names, "v1alpha": alphaNames} {
		if !slices.Contains(names, "clearair.v1.ClearAir") {
			t.Errorf("reflection %s lists %v, without clearair.v1.ClearAir", name, names)
		}
	}
	// The file containing the public service resolves through v1 too.
	if err := v1.Send(&reflectionv1.ServerReflectionRequest{
		MessageRequest: &reflectionv1.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: "clearair.v1.ClearAir"},
	}); err != nil {
		t.Fatalf("reflection v1 send: %v", err)
	}
	files, err := v1.Recv()
	if err != nil {
		t.Fatalf("reflection v1 receive: %v", err)
	}
	if len(files.GetFileDescriptorResponse().GetFileDescriptorProto()) == 0 {
		t.Error("no file descriptor for clearair.v1.ClearAir")
	}
	if err := errors.Join(v1.CloseSend(), v1alpha.CloseSend()); err != nil {
		t.Errorf("closing the reflection streams: %v", err)
	}
}

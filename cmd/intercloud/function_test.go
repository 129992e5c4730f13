package main

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/intercloud/intercloud/hosts/azurefunc"
	"github.com/intercloud/intercloud/hosts/lambda"
)

func runFunction(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	c := &functionCmd{}
	fs := flag.NewFlagSet("function", flag.ContinueOnError)
	c.flags(fs)
	if err := fs.Parse(interleave(fs, args)); err != nil {
		t.Fatal(err)
	}
	err := c.run(t.Context(), &env{stdout: &out, stderr: &errb}, fs.Args())
	return out.String(), err
}

func TestFunctionAzureInit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "app")
	if _, err := runFunction(t, "azure", "init", dir, "--queue", "raw-created"); err != nil {
		t.Fatal(err)
	}
	want, err := azurefunc.AppFiles(azurefunc.AppOptions{Queue: "raw-created"})
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range want {
		got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("%s: %v\n%s", name, err, got)
		}
	}
	if !bytes.Contains(want["load/function.json"], []byte(`"queueName": "raw-created"`)) {
		t.Error("the queue flag is not in load/function.json")
	}
}

func TestFunctionOutsideLambda(t *testing.T) {
	t.Setenv(lambda.EnvRuntimeAPI, "")
	if _, err := runFunction(t, "lambda", "load"); !errors.Is(err, lambda.ErrNotInLambda) {
		t.Fatalf("err = %v, want ErrNotInLambda", err)
	}
	var ee *exitError
	if _, err := runFunction(t, "nope"); !errors.As(err, &ee) || ee.code != 2 {
		t.Fatalf("unknown subcommand: %v", err)
	}
}

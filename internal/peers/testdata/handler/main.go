// Command handler is a trivial Lambda function for testing the Runtime
// Interface Emulator: it echoes the event's name and one environment
// variable.
package main

import (
	"context"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
)

type event struct {
	Name string `json:"name"`
}

type reply struct {
	Hello    string `json:"hello"`
	Greeting string `json:"greeting"`
}

func handle(_ context.Context, e event) (reply, error) {
	return reply{Hello: e.Name, Greeting: os.Getenv("GREETING")}, nil
}

func main() { lambda.Start(handle) }

// The real, unmodified OpenFeature Go SDK with the OFREP provider against the sidecar: every kind of
// answer of ../answer_cases.json, fresh, then again after a line on stdin (the map made stale).
// Same protocol as ../openfeature_answers.py; tests/integration/test_openfeature_answers.py drives it.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"

	ofrep "github.com/open-feature/go-sdk-contrib/providers/ofrep"
	"github.com/open-feature/go-sdk/openfeature"
)

type answerCase struct {
	Case    string         `json:"case"`
	Context map[string]any `json:"context"`
	Key     string         `json:"key"`
	Type    string         `json:"type"`
	Default any            `json:"default"`
}

type result struct {
	Value  any     `json:"value"`
	Reason string  `json:"reason"`
	Error  *string `json:"error"`
}

func record(value any, details openfeature.EvaluationDetails) result {
	var code *string
	if details.ErrorCode != "" {
		text := string(details.ErrorCode)
		code = &text
	}
	return result{Value: value, Reason: string(details.Reason), Error: code}
}

func evaluate(client *openfeature.Client, cases []answerCase) map[string]result {
	ctx := context.Background()
	results := map[string]result{}
	for _, c := range cases {
		attributes := map[string]any{}
		targetingKey := ""
		for k, v := range c.Context {
			if k == "targetingKey" {
				targetingKey = v.(string)
			} else {
				attributes[k] = v
			}
		}
		evalCtx := openfeature.NewEvaluationContext(targetingKey, attributes)
		switch c.Type {
		case "boolean":
			d, _ := client.BooleanValueDetails(ctx, c.Key, c.Default.(bool), evalCtx)
			results[c.Case] = record(d.Value, d.EvaluationDetails)
		case "integer":
			d, _ := client.IntValueDetails(ctx, c.Key, int64(c.Default.(float64)), evalCtx)
			results[c.Case] = record(d.Value, d.EvaluationDetails)
		case "string":
			d, _ := client.StringValueDetails(ctx, c.Key, c.Default.(string), evalCtx)
			results[c.Case] = record(d.Value, d.EvaluationDetails)
		}
	}
	return results
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: go_ofrep <answer_cases.json> <ofrep base url>")
		os.Exit(2)
	}
	raw, err := os.ReadFile(os.Args[1])
	if err != nil {
		panic(err)
	}
	var cases []answerCase
	if err := json.Unmarshal(raw, &cases); err != nil {
		panic(err)
	}
	if err := openfeature.SetProviderAndWait(ofrep.NewProvider(os.Args[2])); err != nil {
		panic(err)
	}
	client := openfeature.NewClient("go")
	stdin := bufio.NewReader(os.Stdin)
	for _, phase := range []string{"fresh", "stale"} {
		if phase == "stale" {
			if _, err := stdin.ReadString('\n'); err != nil {
				panic(err)
			}
		}
		line, _ := json.Marshal(map[string]any{"phase": phase, "go-ofrep": evaluate(client, cases)})
		fmt.Println(string(line))
	}
}

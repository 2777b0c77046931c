// Command ghz-report renders a ghz JSON report (ghz --format json) in another of ghz's own
// formats, with ghz's own printer: one load run gives both the JSON that scripts check and
// the HTML page people read, instead of running the load twice.
//
//	ghz-report -format html -out report.html report.json
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"github.com/bojand/ghz/printer"
	"github.com/bojand/ghz/runner"
)

func main() {
	format := flag.String("format", "html", "ghz output format: html, summary, csv, pretty, influx-summary, influx-details")
	out := flag.String("out", "", "output file (default: standard output)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: ghz-report [-format html] [-out FILE] REPORT.json")
		os.Exit(2)
	}
	if err := run(flag.Arg(0), *format, *out); err != nil {
		fmt.Fprintln(os.Stderr, "ghz-report:", err)
		os.Exit(1)
	}
}

func run(input, format, output string) error {
	data, err := os.ReadFile(input)
	if err != nil {
		return err
	}
	var report runner.Report
	if err := json.Unmarshal(data, &report); err != nil {
		return fmt.Errorf("%s is not a ghz JSON report: %w", input, err)
	}
	writer := os.Stdout
	if output != "" {
		file, err := os.Create(output)
		if err != nil {
			return err
		}
		defer file.Close()
		writer = file
	}
	return (&printer.ReportPrinter{Out: writer, Report: &report}).Print(format)
}

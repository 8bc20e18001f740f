package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// printItems prints items as JSON lines (asJSON) or as a table under the
// given column names, one row of cells per item.
func printItems[T any](w io.Writer, asJSON bool, items []T, columns []string, row func(T) []string) error {
	if asJSON {
		for _, it := range items {
			b, err := json.Marshal(it)
			if err != nil {
				return err
			}
			fmt.Fprintln(w, string(b))
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(columns, "\t"))
	for _, it := range items {
		fmt.Fprintln(tw, strings.Join(row(it), "\t"))
	}
	return tw.Flush()
}

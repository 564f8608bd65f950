// A client of minimega's command socket that talks as minimega's own Go
// client library (pkg/miniclient) does, with Go's own JSON encoder and
// decoder on one connection: a request object {Command, Suggest,
// PlumbPipe}, then either response objects (Resp, Rendered, More) or,
// after a PlumbPipe request, JSON strings both ways.
//
//	plumb_client -base DIR -e COMMAND      run one command, print Rendered
//	plumb_client -base DIR -pipe NAME [-n N]
//	    write each line of stdin to the pipe (as "line\n"), print each
//	    message received; exit after N messages, or at the end of stdin
//	    when N is 0.
//
// Written for this project's tests; only the wire format is minimega's.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
)

type request struct {
	Command   string
	Suggest   string
	PlumbPipe string
}

type response struct {
	Host     string
	Response string
	Header   []string
	Tabular  [][]string
	Error    string
}

type reply struct {
	Resp     []response
	Rendered string
	More     bool
	Status   bool
	Suggest  []string `json:",omitempty"`
}

func main() {
	base := flag.String("base", "/tmp/minimega", "daemon base directory")
	command := flag.String("e", "", "command to run")
	pipe := flag.String("pipe", "", "pipe to attach to")
	count := flag.Int("n", 0, "messages to read before exiting")
	flag.Parse()

	conn, err := net.Dial("unix", filepath.Join(*base, "minimega"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	enc := json.NewEncoder(conn)
	dec := json.NewDecoder(conn)

	if *command != "" {
		if err := enc.Encode(request{Command: *command}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		failed := false
		for {
			var r reply
			if err := dec.Decode(&r); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
			if r.Rendered != "" {
				fmt.Println(r.Rendered)
			}
			for _, x := range r.Resp {
				if x.Error != "" {
					fmt.Println("E: " + x.Error)
					failed = true
				}
			}
			if !r.More && !r.Status {
				break
			}
		}
		if failed {
			os.Exit(1)
		}
		return
	}

	if err := enc.Encode(request{PlumbPipe: *pipe}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	done := make(chan struct{})
	go func() {
		seen := 0
		for {
			var m string
			if err := dec.Decode(&m); err != nil {
				close(done)
				return
			}
			fmt.Print(m)
			seen++
			if *count > 0 && seen >= *count {
				os.Exit(0)
			}
		}
	}()
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if err := enc.Encode(in.Text() + "\n"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	if *count == 0 {
		conn.Close()
		return
	}
	<-done
	os.Exit(3)
}

// A test fixture for the project's gob codec (src/cc/gob): real
// encoding/gob on struct definitions written for this project to mirror
// the wire shape of minimega's ron messages (field names, order and kinds
// are what gob transmits). Standard library only.
//
//	gobfixture encode   write the sample messages as one gob stream
//	gobfixture decode   read messages until EOF, print each as JSON
//	gobfixture sample   print the sample messages as JSON (no gob)
//	gobfixture tunnel-encode, tunnel-decode, tunnel-sample
//	                    the same for minitunnel's messages
package main

import (
	"bufio"
	"encoding/gob"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"
)

type Message struct {
	Type     int
	UUID     string
	Error    string
	Commands map[int]*Command
	Client   *Client
	File     *File
	Tunnel   []byte
	Pipe     string
	PipeMode int
	PipeData string
	UfsMode  int
	Version  string
}

type Filter struct {
	UUID     string
	Hostname string
	Arch     string
	OS       string
	MAC      string
	IP       string
	Tags     map[string]string
}

type ConnTest struct {
	Endpoint string
	Wait     time.Duration
	Packet   []byte
}

// Level stands in for a named integer type such as minilog.Level.
type Level int

type Command struct {
	ID         int
	Background bool
	Command    []string
	FilesSend  []string
	FilesRecv  []string
	ConnTest   *ConnTest
	PID        int
	KillAll    string
	Level      *Level
	Filter     *Filter
	CheckedIn  []string
	Prefix     string
	Once       bool
	Sent       bool
	Stdin      string
	Stdout     string
	Stderr     string
}

type Process struct {
	PID     int
	Command []string
}

type Response struct {
	ID             int
	Stdout         string
	Stderr         string
	ExitCode       int
	RecordExitCode bool
}

type Client struct {
	UUID          string
	Arch          string
	OS            string
	Version       string
	Hostname      string
	IPs           []string
	MACs          []string
	Processes     map[int]*Process
	Tags          map[string]string
	Responses     []*Response
	LastCommandID int
}

// FileMode stands in for os.FileMode (a named uint32).
type FileMode uint32

type File struct {
	ID     int
	Name   string
	Perm   FileMode
	Data   []byte
	Offset int64
	EOF    bool
}

// tunnelMessage mirrors minimega's minitunnel message (internal/minitunnel):
// its own gob stream, carried inside ron TUNNEL messages.
type tunnelMessage struct {
	Type   int
	Ack    bool
	TID    int
	Source int
	Host   string
	Port   int
	Error  string
	Data   []byte
}

// tunnelSample is mirrored by `tunnel_sample()` in the Rust tests: change both.
func tunnelSample() []tunnelMessage {
	return []tunnelMessage{
		{Type: 0},
		{Type: 0, Ack: true},
		{Type: 1, TID: 5577006791947779410, Host: "10.0.0.2", Port: 80},
		{Type: 3, TID: 5577006791947779410, Data: []byte("GET / HTTP/1.0\r\n\r\n\x00\xff")},
		{Type: 2, TID: 5577006791947779410, Error: "EOF"},
		{Type: 4, TID: 8674665223082153551, Source: 8080, Host: "localhost", Port: 22},
		{Type: 3, TID: 8674665223082153551, Ack: true, Error: "listen tcp :8080: bind: address already in use"},
	}
}

// sample is mirrored by `sample()` in the Rust tests: change both.
func sample() []Message {
	level := Level(2)
	return []Message{
		{
			Type:    1,
			UUID:    "9131e2a3-ad6b-4f38-b5ba-5ff2b19e32dc",
			Version: "v1",
			Client: &Client{
				UUID:     "9131e2a3-ad6b-4f38-b5ba-5ff2b19e32dc",
				Arch:     "amd64",
				OS:       "linux",
				Version:  "go-fixture",
				Hostname: "guest-1",
				IPs:      []string{"10.0.0.1", "fe80::1"},
				MACs:     []string{"52:54:00:12:34:56"},
				Processes: map[int]*Process{
					42:  {PID: 42, Command: []string{"sleep", "1000"}},
					100: {PID: 100, Command: []string{"nc", "-l", "-p", "80"}},
				},
				Tags: map[string]string{"role": "web", "zone": "dmz"},
				Responses: []*Response{
					{ID: 1, Stdout: "guest-1\n", ExitCode: 0, RecordExitCode: true},
					{ID: 2, Stdout: "", Stderr: "no such file\n", ExitCode: 3, RecordExitCode: true},
					{ID: 3, Stdout: "bin\x00ary\xff\xfe", ExitCode: -1},
				},
				LastCommandID: 3,
			},
		},
		{
			Type: 0,
			Commands: map[int]*Command{
				1: {ID: 1, Command: []string{"hostname"}},
				7: {
					ID:         7,
					Background: true,
					Command:    []string{"sh", "-c", "echo \"hi\" > /tmp/x"},
					FilesSend:  []string{"a.txt", "dir/b.bin"},
					FilesRecv:  []string{"/var/log/*.log"},
					PID:        -1,
					KillAll:    "nc",
					Level:      &level,
					Filter: &Filter{
						Hostname: "guest-1",
						IP:       "10.0.0.0/24",
						Tags:     map[string]string{"name": "web1"},
					},
					CheckedIn: []string{"9131e2a3-ad6b-4f38-b5ba-5ff2b19e32dc"},
					Prefix:    "setup",
					Once:      true,
					Sent:      true,
					Stdin:     "in",
					Stdout:    "out",
					Stderr:    "err",
				},
				9: {
					ID:       9,
					ConnTest: &ConnTest{Endpoint: "udp://10.0.0.2:53", Wait: 10 * time.Second, Packet: []byte{1, 2, 3, 0, 255}},
					Filter:   &Filter{},
				},
			},
		},
		{
			Type: 3,
			UUID: "9131e2a3-ad6b-4f38-b5ba-5ff2b19e32dc",
			File: &File{ID: 7, Name: "tmp/out.txt", Perm: 0644, Data: []byte("chunk of data"), Offset: 102400, EOF: true},
		},
		{Type: 3, File: &File{Name: "a.txt"}, Error: "open a.txt: no such file or directory"},
		{Type: 6, Version: "v1"},
		{Type: 2, UUID: "9131e2a3-ad6b-4f38-b5ba-5ff2b19e32dc", Tunnel: []byte{0, 1, 2, 250}},
		{Type: 4, Pipe: "p1", PipeMode: 4, PipeData: "line\n"},
		{Type: 5, UfsMode: 2, Tunnel: []byte("9p")},
	}
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: gobfixture encode|decode|sample|tunnel-encode|tunnel-decode|tunnel-sample")
		os.Exit(2)
	}
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	switch os.Args[1] {
	case "encode":
		enc := gob.NewEncoder(out)
		for _, m := range sample() {
			m := m
			if err := enc.Encode(&m); err != nil {
				fail(err)
			}
		}
	case "decode":
		dec := gob.NewDecoder(bufio.NewReader(os.Stdin))
		for {
			var m Message
			err := dec.Decode(&m)
			if err == io.EOF {
				return
			}
			if err != nil {
				fail(err)
			}
			line(out, &m)
		}
	case "sample":
		for _, m := range sample() {
			m := m
			line(out, &m)
		}
	case "tunnel-encode":
		enc := gob.NewEncoder(out)
		for _, m := range tunnelSample() {
			m := m
			if err := enc.Encode(&m); err != nil {
				fail(err)
			}
		}
	case "tunnel-decode":
		dec := gob.NewDecoder(bufio.NewReader(os.Stdin))
		for {
			var m tunnelMessage
			err := dec.Decode(&m)
			if err == io.EOF {
				return
			}
			if err != nil {
				fail(err)
			}
			tunnelLine(out, &m)
		}
	case "tunnel-sample":
		for _, m := range tunnelSample() {
			m := m
			tunnelLine(out, &m)
		}
	default:
		fail(fmt.Errorf("unknown mode %q", os.Args[1]))
	}
}

func line(w io.Writer, m *Message) {
	b, err := json.Marshal(m)
	if err != nil {
		fail(err)
	}
	fmt.Fprintf(w, "%s\n", b)
	// JSON folds invalid UTF-8 into U+FFFD; quote the raw bytes too.
	if m.Client != nil {
		for _, r := range m.Client.Responses {
			fmt.Fprintf(w, "response %d stdout %q stderr %q\n", r.ID, r.Stdout, r.Stderr)
		}
	}
}

func tunnelLine(w io.Writer, m *tunnelMessage) {
	fmt.Fprintf(w, "type %d ack %v tid %d source %d host %q port %d error %q data %q\n",
		m.Type, m.Ack, m.TID, m.Source, m.Host, m.Port, m.Error, m.Data)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "gobfixture:", err)
	os.Exit(1)
}

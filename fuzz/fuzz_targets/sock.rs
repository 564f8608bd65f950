//! The command socket's decoder: any byte stream, cut into reads at
//! points the input chooses, framed into objects and read as requests.
//! Never panics, never holds an object past its limit, and frames the
//! same objects however the stream is cut.
#![no_main]

use libfuzzer_sys::fuzz_target;
use minimega::sock::proto::{parse_request, Decoder};

const LIMIT: usize = 4096;

fn frame(chunks: &[&[u8]]) -> (Vec<Vec<u8>>, bool) {
    let mut d = Decoder::new(LIMIT);
    let mut out = Vec::new();
    for c in chunks {
        d.push(c);
        loop {
            match d.next_object() {
                Ok(Some(o)) => {
                    assert!(o.len() <= LIMIT, "an object of {} bytes", o.len());
                    let _ = parse_request(&o);
                    out.push(o);
                }
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
    }
    (out, false)
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    let whole = frame(&[stream]);
    let step = usize::from(cut % 16) + 1;
    let pieces: Vec<&[u8]> = stream.chunks(step).collect();
    let split = frame(&pieces);
    assert_eq!(whole, split, "cut every {step} bytes");
});

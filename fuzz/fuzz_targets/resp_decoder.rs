//! Fuzzes the RESP2 request decoder of the redis example (`examples/redis/resp.rs`): for any
//! bytes, in any split into reads, the decoder must not panic, never claim more bytes than
//! it was given, never leave more unconsumed input than `Limits::max_unconsumed` when it
//! asks for more, never hold more than `Limits::max_request` argument bytes, and decode the
//! same commands whether the bytes arrive at once or in pieces.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../examples/redis/resp.rs"]
mod resp;

use resp::{Decoder, Limits, ProtocolError};

/// Small limits, so that short inputs reach every limit check.
const SMALL: Limits = Limits {
    max_inline: 64,
    max_multibulk_len: 16,
    max_bulk_len: 32,
    max_request: 64,
};

/// What decoding a byte stream gave: the commands, and the error that ended it, if any.
struct Outcome {
    commands: Vec<Vec<Vec<u8>>>,
    error: Option<ProtocolError>,
}

/// Feeds `data` to a decoder in reads of the sizes `chunks` cycles through, as the server
/// does (append the read, decode until it needs more, drop what was consumed), checking the
/// decoder's promises after every step.
fn decode(limits: Limits, data: &[u8], chunks: &[usize]) -> Outcome {
    let mut decoder = Decoder::new(limits);
    let mut buffer: Vec<u8> = Vec::new();
    let mut commands = Vec::new();
    let mut offset = 0;
    let mut sizes = chunks.iter().copied().cycle();
    while offset < data.len() {
        let size = sizes
            .next()
            .unwrap_or(data.len())
            .clamp(1, data.len() - offset);
        buffer.extend_from_slice(&data[offset..offset + size]);
        offset += size;
        loop {
            let step = match decoder.decode(&buffer) {
                Ok(step) => step,
                Err(error) => {
                    if let Some(reply) = error.reply() {
                        assert!(reply.starts_with(b"ERR Protocol error: "));
                    }
                    return Outcome {
                        commands,
                        error: Some(error),
                    };
                }
            };
            assert!(step.consumed <= buffer.len(), "claimed more than given");
            assert!(decoder.buffered_bytes() <= limits.max_request);
            if step.needs_more_input() {
                assert!(
                    buffer.len() <= limits.max_unconsumed(),
                    "left {} bytes unconsumed, limit {}",
                    buffer.len(),
                    limits.max_unconsumed()
                );
                break;
            }
            buffer.drain(..step.consumed);
            if let Some(command) = step.command {
                assert!(!command.is_empty(), "an empty command was returned");
                commands.push(command);
            }
        }
    }
    Outcome {
        commands,
        error: None,
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&control, data)) = input.split_first() else {
        return;
    };
    let limits = if control & 1 == 0 {
        SMALL
    } else {
        Limits::DEFAULT
    };
    // Read sizes from the control byte: 1..=8 bytes, and one big read.
    let small = usize::from(control >> 1 & 7) + 1;
    let whole = decode(limits, data, &[data.len().max(1)]);
    let pieces = decode(limits, data, &[small, 1, 3 * small]);
    // Chunking may change where a limit is noticed (an over-long line is refused before
    // its end arrives), but never the commands: one list is a prefix of the other, and
    // equal when neither decoding failed.
    let (short, long) = if whole.commands.len() <= pieces.commands.len() {
        (&whole.commands, &pieces.commands)
    } else {
        (&pieces.commands, &whole.commands)
    };
    assert_eq!(
        short[..],
        long[..short.len()],
        "chunking changed the commands"
    );
    if whole.error.is_none() && pieces.error.is_none() {
        assert_eq!(whole.commands, pieces.commands);
    }
});

//! Direct reads of a few MiB (a fetch past the tail cache) take the buffer
//! of a read already dropped on this core instead of fresh memory, whose
//! pages the kernel would fault in and zero on every read (the vendored
//! glommio's fifth patch; docs/benchmarks.md "Fetch buffers faulted in on
//! every read").

use crate::common::run;
use glommio::io::DmaFile;

/// Above the 2 MiB of registered I/O memory the test executor has, so the
/// buffers come from the allocator.
const READ_BYTES: usize = 4 << 20;

#[test]
fn a_large_read_reuses_the_buffer_of_one_dropped() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("data");
        let bytes: Vec<u8> = (0..3 * READ_BYTES).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).expect("write");
        let file = DmaFile::open(&path).await.expect("open");

        let first = file.read_at(0, READ_BYTES).await.expect("read");
        assert_eq!(&first[..], &bytes[..READ_BYTES]);
        let first_at = first.as_ptr();
        drop(first);

        let second = file
            .read_at(READ_BYTES as u64, READ_BYTES)
            .await
            .expect("read");
        // The reused memory holds the first read's bytes; only the second
        // read's may show.
        assert_eq!(&second[..], &bytes[READ_BYTES..2 * READ_BYTES]);
        // The same pages: already faulted in (the fault count cannot show
        // it here, the kernel may take those faults in an io_uring worker).
        assert_eq!(second.as_ptr(), first_at, "the dropped buffer is reused");

        // Held buffers are never handed out twice.
        let third = file
            .read_at(2 * READ_BYTES as u64, READ_BYTES)
            .await
            .expect("read");
        assert_ne!(third.as_ptr(), second.as_ptr());
        assert_eq!(&third[..], &bytes[2 * READ_BYTES..]);
        assert_eq!(&second[..], &bytes[READ_BYTES..2 * READ_BYTES]);
        file.close().await.expect("close");
    });
}

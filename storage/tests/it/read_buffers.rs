//! Direct reads of a few MiB (a fetch past the tail cache) take the buffer
//! of a read already dropped on this core instead of fresh memory, whose
//! pages the kernel would fault in and zero on every read (the vendored
//! glommio's fifth patch; docs/benchmarks.md "Fetch buffers faulted in on
//! every read").

use crate::common::run;
use glommio::io::{kept_dma_buffer_bytes, DmaFile};

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
        let kept_before = kept_dma_buffer_bytes();
        // Whole 2 MiB pages, so the kernel can back it with huge pages.
        assert_eq!(first_at as usize % (2 << 20), 0, "{first_at:?}");
        drop(first);
        assert_eq!(kept_dma_buffer_bytes(), kept_before + READ_BYTES, "kept");

        let second = file
            .read_at(READ_BYTES as u64, READ_BYTES)
            .await
            .expect("read");
        // The reused memory holds the first read's bytes; only the second
        // read's may show.
        assert_eq!(&second[..], &bytes[READ_BYTES..2 * READ_BYTES]);
        assert_eq!(kept_dma_buffer_bytes(), kept_before, "taken again");
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

/// What a thread keeps is bounded (64 MiB), oldest freed first beyond it,
/// and small buffers are not kept.
#[test]
fn kept_buffers_are_bounded() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("data");
        std::fs::write(&path, vec![7u8; READ_BYTES]).expect("write");
        let file = DmaFile::open(&path).await.expect("open");
        assert_eq!(
            kept_dma_buffer_bytes(),
            0,
            "a test's thread starts with none"
        );
        // 20 reads held at once, then all freed: 80 MiB, 64 MiB kept.
        let mut held = Vec::new();
        for _ in 0..20 {
            held.push(file.read_at(0, READ_BYTES).await.expect("read"));
        }
        assert_eq!(kept_dma_buffer_bytes(), 0, "all taken");
        drop(held);
        assert_eq!(kept_dma_buffer_bytes(), 64 << 20);
        // A 4 KiB read comes from the executor's registered memory or
        // the allocator, and is not kept.
        let small = file.read_at(0, 4096).await.expect("read");
        drop(small);
        assert_eq!(kept_dma_buffer_bytes(), 64 << 20);
        file.close().await.expect("close");
    });
}

/// Where everything goes in the file being written: host clusters in the order they are
/// handed out, the L2 entries that point at them, and the exact refcount of every cluster.
/// The metadata (L2 tables, L1 table, refcount blocks and table) is laid out after the data
/// by `finish`, when the size of everything is known.
struct QCOW2Layout {
    let clusterBits: Int
    let clusterSize: Int
    let virtualSize: Int64
    let l2Entries: Int
    let l1Size: Int
    /// Next free host cluster (the end of the file so far).
    private(set) var hostEnd: Int64
    /// One count per host cluster handed out; index 0 is the header.
    private(set) var refcounts: [UInt16]
    /// Free bytes [packOffset, packLimit) in the cluster that receives compressed data.
    private var packOffset: Int64 = 0
    private var packLimit: Int64 = 0
    /// L2 tables by L1 index; only tables with entries exist.
    private var l2Tables: [Int: [UInt64]] = [:]

    init(virtualSize: Int64, clusterBits: Int) throws {
        self.clusterBits = clusterBits
        clusterSize = 1 << clusterBits
        self.virtualSize = virtualSize
        l2Entries = clusterSize / 8
        let clusters = (virtualSize + Int64(clusterSize) - 1) / Int64(clusterSize)
        let l1 = (clusters + Int64(l2Entries) - 1) / Int64(l2Entries)
        guard l1 * 8 <= Int64(QCOW2Format.maxL1Bytes) else {
            throw QCOW2Error(.limitExceeded, field: "l1_size",
                             "a virtual size of \(virtualSize) bytes needs an L1 table of \(l1 * 8) bytes with \(clusterSize)-byte clusters; QEMU accepts at most \(QCOW2Format.maxL1Bytes): choose larger clusters")
        }
        l1Size = Int(l1)
        hostEnd = Int64(clusterSize)
        refcounts = [1]
    }

    private mutating func allocate(clusters count: Int) -> Int64 {
        let offset = hostEnd
        hostEnd += Int64(count) * Int64(clusterSize)
        refcounts.append(contentsOf: repeatElement(0, count: count))
        return offset
    }

    private mutating func setEntry(virtualCluster: Int64, _ entry: UInt64) {
        let l1Index = Int(virtualCluster / Int64(l2Entries))
        let l2Index = Int(virtualCluster % Int64(l2Entries))
        l2Tables[l1Index, default: [UInt64](repeating: 0, count: l2Entries)][l2Index] = entry
    }

    /// Hands out a host cluster for an uncompressed data cluster.
    mutating func placeRaw(virtualCluster: Int64) -> Int64 {
        let offset = allocate(clusters: 1)
        refcounts[Int(offset >> Int64(clusterBits))] = 1
        setEntry(virtualCluster: virtualCluster, UInt64(offset) | QCOW2Format.copiedFlag)
        return offset
    }

    /// Hands out `length` bytes for a compressed cluster, packed after the previous one as
    /// QEMU packs them: the rest of a partly used cluster is used even when raw clusters were
    /// allocated after it, and data may run on into the next cluster when that is the end.
    mutating func placeCompressed(virtualCluster: Int64, length: Int) throws -> Int64 {
        let size = Int64(length)
        let cluster = Int64(clusterSize)
        let offset: Int64
        if packOffset + size <= packLimit {
            offset = packOffset
        } else if packLimit == hostEnd && packOffset < packLimit {
            offset = packOffset
            _ = allocate(clusters: Int((offset + size - packLimit + cluster - 1) / cluster))
            packLimit = hostEnd
        } else {
            offset = allocate(clusters: Int((size + cluster - 1) / cluster))
            packLimit = hostEnd
        }
        packOffset = offset + size
        let first = Int(offset >> Int64(clusterBits))
        let last = Int((offset + size - 1) >> Int64(clusterBits))
        for index in first...last {
            guard refcounts[index] < UInt16.max else {
                throw QCOW2Error(.limitExceeded, offset: UInt64(index) << UInt64(clusterBits),
                                 "more than 65535 compressed clusters share host cluster \(index)")
            }
            refcounts[index] += 1
        }
        setEntry(virtualCluster: virtualCluster,
                 QCOW2Format.compressedEntry(offset: UInt64(offset), length: length, clusterBits: clusterBits))
        return offset
    }

    /// The finished metadata: byte blobs with their file offsets (in ascending order), the
    /// header, and the file size.
    struct Metadata {
        var blobs: [(offset: Int64, bytes: [UInt8])]
        var header: QCOW2Header
        var fileSize: Int64
    }

    /// Lays out L2 tables, the L1 table and the refcount structures after the data.
    mutating func finish(compression: QCOW2Compression) throws -> Metadata {
        let cluster = Int64(clusterSize)
        var blobs: [(offset: Int64, bytes: [UInt8])] = []

        // L2 tables, in L1 order.
        var l1 = [UInt8](repeating: 0, count: l1Size * 8)
        for (l1Index, entries) in l2Tables.sorted(by: { $0.key < $1.key }) {
            let offset = allocate(clusters: 1)
            refcounts[Int(offset / cluster)] = 1
            var table = [UInt8](repeating: 0, count: clusterSize)
            for (index, entry) in entries.enumerated() where entry != 0 {
                table.storeBE(entry, at: index * 8)
            }
            blobs.append((offset, table))
            l1.storeBE(UInt64(offset) | QCOW2Format.copiedFlag, at: l1Index * 8)
        }
        l2Tables = [:]

        // L1 table; an empty disk has none (offset 0), as QEMU makes it: QEMU counts only the
        // clusters that l1_size entries occupy, so an allocated cluster would be a leak.
        var l1Offset: Int64 = 0
        if l1Size > 0 {
            let l1Clusters = (l1.count + clusterSize - 1) / clusterSize
            l1Offset = allocate(clusters: l1Clusters)
            for index in 0..<l1Clusters { refcounts[Int(l1Offset / cluster) + index] = 1 }
            l1 += [UInt8](repeating: 0, count: l1Clusters * clusterSize - l1.count)
            blobs.append((l1Offset, l1))
        }

        // Refcount blocks and table cover every cluster, themselves included: grow both until
        // they cover what they add.
        let perBlock = clusterSize * 8 / (1 << QCOW2Format.refcountOrder)
        let before = refcounts.count
        var blocks = 0
        var tableClusters = 0
        while true {
            let total = before + blocks + tableClusters
            let neededBlocks = (total + perBlock - 1) / perBlock
            let neededTable = (neededBlocks * 8 + clusterSize - 1) / clusterSize
            if neededBlocks == blocks && neededTable == tableClusters { break }
            blocks = neededBlocks
            tableClusters = neededTable
        }
        guard tableClusters * clusterSize <= QCOW2Format.maxRefcountTableBytes else {
            throw QCOW2Error(.limitExceeded, field: "refcount_table_clusters",
                             "the refcount table would need \(tableClusters * clusterSize) bytes; QEMU accepts at most \(QCOW2Format.maxRefcountTableBytes): choose larger clusters")
        }
        let blocksOffset = allocate(clusters: blocks)
        let tableOffset = allocate(clusters: tableClusters)
        for index in before..<refcounts.count { refcounts[index] = 1 }

        var table = [UInt8](repeating: 0, count: tableClusters * clusterSize)
        for block in 0..<blocks {
            var bytes = [UInt8](repeating: 0, count: clusterSize)
            let first = block * perBlock
            for index in first..<min(first + perBlock, refcounts.count) {
                bytes.storeBE(refcounts[index], at: (index - first) * 2)
            }
            let offset = blocksOffset + Int64(block) * cluster
            blobs.append((offset, bytes))
            table.storeBE(UInt64(offset), at: block * 8)
        }
        blobs.append((tableOffset, table))

        var header = QCOW2Header()
        header.clusterBits = UInt32(clusterBits)
        header.size = UInt64(virtualSize)
        header.l1Size = UInt32(l1Size)
        header.l1TableOffset = UInt64(l1Offset)
        header.refcountTableOffset = UInt64(tableOffset)
        header.refcountTableClusters = UInt32(tableClusters)
        if compression == .zstd {
            header.compressionType = 1
            header.incompatibleFeatures |= QCOW2Format.incompatibleCompressionType
        }
        return Metadata(blobs: blobs, header: header, fileSize: hostEnd)
    }
}

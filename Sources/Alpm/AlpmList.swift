import CAlpm
#if canImport(Glibc)
import Glibc
#endif

/// Helpers for `alpm_list_t`, libalpm's doubly linked list of `void *`.
enum AlpmList {
    /// The data pointers of a list, in order (the list itself is not freed).
    static func pointers(_ list: UnsafeMutablePointer<alpm_list_t>?) -> [UnsafeMutableRawPointer] {
        var result: [UnsafeMutableRawPointer] = []
        var node = list
        while let current = node {
            if let data = current.pointee.data { result.append(data) }
            node = current.pointee.next
        }
        return result
    }

    /// A list of C strings as Swift strings.
    static func strings(_ list: UnsafeMutablePointer<alpm_list_t>?) -> [String] {
        pointers(list).map { String(cString: $0.assumingMemoryBound(to: CChar.self)) }
    }

    /// A list of `alpm_pkg_t *` (packages stay owned by their database).
    static func packages(_ list: UnsafeMutablePointer<alpm_list_t>?) -> [OpaquePointer] {
        pointers(list).map { OpaquePointer($0) }
    }

    /// Builds a list of strdup'd strings; free it with `freeStrings`.
    static func makeStrings(_ strings: [String]) -> UnsafeMutablePointer<alpm_list_t>? {
        var list: UnsafeMutablePointer<alpm_list_t>?
        for string in strings {
            list = alpm_list_add(list, strdup(string))
        }
        return list
    }

    /// Frees a list and the strings (or other malloc'd data) it holds.
    static func freeStrings(_ list: UnsafeMutablePointer<alpm_list_t>?) {
        guard let list else { return }
        alpm_list_free_inner(list, free)
        alpm_list_free(list)
    }

    /// Runs `body` with a temporary list of strings.
    static func withStrings<R>(_ strings: [String], _ body: (UnsafeMutablePointer<alpm_list_t>?) throws -> R) rethrows -> R {
        let list = makeStrings(strings)
        defer { freeStrings(list) }
        return try body(list)
    }

    /// Runs `body` with a temporary list of borrowed pointers (the data is not freed).
    static func withPointers<R>(_ pointers: [OpaquePointer], _ body: (UnsafeMutablePointer<alpm_list_t>?) throws -> R) rethrows -> R {
        var list: UnsafeMutablePointer<alpm_list_t>?
        for pointer in pointers {
            list = alpm_list_add(list, UnsafeMutableRawPointer(pointer))
        }
        defer { alpm_list_free(list) }
        return try body(list)
    }
}

/// A C string or nil as a Swift string.
func string(_ pointer: UnsafePointer<CChar>?) -> String? {
    pointer.map { String(cString: $0) }
}

func string(_ pointer: UnsafeMutablePointer<CChar>?) -> String? {
    pointer.map { String(cString: $0) }
}

// Which backups `backup prune` keeps. The policy applies to each snapshot's backups on their
// own (a run of `backup create` backs up several snapshots; keeping "the last 7" means 7 of
// each snapshot's, not 7 altogether):
//   --keep-last N    the N newest
//   --keep-daily D   the newest of each of the D most recent days (UTC) that have a backup
//   --keep-weekly W  the newest of each of the W most recent ISO weeks that have a backup
// Then every backup a kept one builds on (its chain of bases) is kept too, whatever its age.
import Foundation
import SystemSupport

package struct RetentionPolicy: Sendable, Equatable {
    package var last: Int
    package var daily: Int
    package var weekly: Int

    package init(last: Int = 0, daily: Int = 0, weekly: Int = 0) {
        self.last = last
        self.daily = daily
        self.weekly = weekly
    }

    package var keepsNothing: Bool { last == 0 && daily == 0 && weekly == 0 }

    /// Parses "--keep-last 7 --keep-daily 14 --keep-weekly 8" (the rast.conf form).
    package static func parse(_ text: String) throws -> RetentionPolicy {
        var policy = RetentionPolicy()
        let words = text.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        var index = 0
        while index < words.count {
            let word = words[index]
            guard index + 1 < words.count, let value = Int(words[index + 1]), value >= 0 else {
                throw UserError("backup_keep: '\(word)' needs a number after it (e.g. --keep-daily 7)")
            }
            switch word {
            case "--keep-last": policy.last = value
            case "--keep-daily": policy.daily = value
            case "--keep-weekly": policy.weekly = value
            default: throw UserError("backup_keep: unknown option '\(word)' (use --keep-last, --keep-daily, --keep-weekly)")
            }
            index += 2
        }
        return policy
    }

    /// The IDs to keep of `backups`: what the policy selects and every base those need.
    package func keep(_ backups: [BackupManifest]) -> Set<String> {
        var kept = Set<String>()
        for group in Dictionary(grouping: backups, by: \.snapshot).values {
            let newestFirst = group.sorted { $0.id > $1.id }
            kept.formUnion(newestFirst.prefix(last).map(\.id))
            kept.formUnion(RetentionPolicy.newestPerPeriod(newestFirst, count: daily) { RetentionPolicy.day($0) })
            kept.formUnion(RetentionPolicy.newestPerPeriod(newestFirst, count: weekly) { RetentionPolicy.isoWeek($0) })
        }
        // The chains the kept backups stand on.
        let byID = Dictionary(uniqueKeysWithValues: backups.map { ($0.id, $0) })
        var queue = Array(kept)
        while let id = queue.popLast() {
            if let base = byID[id]?.base, !kept.contains(base) {
                kept.insert(base)
                queue.append(base)
            }
        }
        return kept
    }

    static func newestPerPeriod(_ newestFirst: [BackupManifest], count: Int, period: (Date) -> String) -> [String] {
        var seen: [String] = []
        var result: [String] = []
        for backup in newestFirst {
            let key = period(backup.date)
            if seen.contains(key) { continue }
            guard seen.count < count else { break }
            seen.append(key)
            result.append(backup.id)
        }
        return result
    }

    static var utc: Calendar {
        var calendar = Calendar(identifier: .iso8601)
        calendar.timeZone = TimeZone(identifier: "UTC") ?? calendar.timeZone
        return calendar
    }

    static func day(_ date: Date) -> String {
        let parts = utc.dateComponents([.year, .month, .day], from: date)
        return "\(parts.year ?? 0)-\(parts.month ?? 0)-\(parts.day ?? 0)"
    }

    static func isoWeek(_ date: Date) -> String {
        let parts = utc.dateComponents([.yearForWeekOfYear, .weekOfYear], from: date)
        return "\(parts.yearForWeekOfYear ?? 0)-W\(parts.weekOfYear ?? 0)"
    }
}

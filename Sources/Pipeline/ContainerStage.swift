import Containers
import Foundation
import OCI
import Recipe
import SystemSupport

/// The containers stage (when the recipe has `[[containers]]`): pulls each image into the
/// container image store on the image's shared @var (/var/lib/rast/oci), and writes the
/// containers to start at boot to snapshot 0's /etc/rast/containers.json with the boot hook
/// that starts them (/etc/rc.d/45-rast-containers.sh). Runs before the snapshot tree is made
/// from snapshot 0.
package struct ContainerStage {
    package let recipe: Recipe
    /// The @var subvolume of the image being built.
    package let variable: String
    /// Snapshot 0's root.
    package let base: String
    package let progress: ProgressReporter

    package func run() throws -> [String] {
        // A restart policy needs s6 in the image (it supervises such containers).
        for (index, spec) in recipe.containers.enumerated() where spec.name != nil && spec.restart != "no" {
            guard Files.exists(base + "/usr/bin/s6-svscan") else {
                throw UserError(at(index, "restart") + ": restart = \"\(spec.restart)\" needs s6 in the image, which has none (add s6 to packages.install)")
            }
        }
        let store = try ImageStore(root: variable + "/lib/rast/oci")
        var boot: [BootContainers.Entry] = []
        var pulled: [String] = []
        for (index, spec) in recipe.containers.enumerated() {
            let source: ImageSource
            do { source = try ImageSource(parsing: spec.image) } catch {
                throw UserError(at(index, "image") + ": \(error)", cause: error)
            }
            progress.begin("containers: pulling \(source)")
            let stopwatch = Stopwatch()
            let image: StoredImage
            do {
                image = try store.pull(source, name: spec.imageName, progress: progress)
            } catch {
                throw UserError(at(index, "image") + ": pulling \(source) failed: \(error)", cause: error)
            }
            progress.end("containers: \(image.name)", summary: "\(image.chainIDs.count) layers, \(ByteCount.format(image.size)) in \(stopwatch.formatted)")
            pulled.append(image.name)
            guard let name = spec.name else { continue }
            var options = RunOptions()
            options.name = name
            options.detach = true
            options.command = spec.command
            options.environment = spec.environment
            do {
                options.volumes = try spec.volumes.map(RunOptions.Volume.init(parsing:))
            } catch {
                throw UserError(at(index, "volumes") + ": \(error)", cause: error)
            }
            switch spec.network {
            case .none: options.network = .none
            case .host: options.network = .host
            }
            options.memory = spec.memory
            options.cpus = spec.cpus
            options.pidsLimit = spec.pidsLimit
            options.readOnly = spec.readOnly
            options.user = spec.user
            do {
                let restart = try RestartPolicy(parsing: spec.restart)
                options.restart = restart == .no ? nil : restart
            } catch {
                throw UserError(at(index, "restart") + ": \(error)")
            }
            boot.append(BootContainers.Entry(image: image.name, options: options))
        }
        if !boot.isEmpty {
            try BootContainers(containers: boot).write(to: base + BootContainers.path)
            try Files.write(base + "/etc/rc.d/" + BootContainers.hookName, string: BootContainers.hook, mode: 0o755)
        }
        return pulled
    }

    private func at(_ index: Int, _ key: String) -> String {
        let path = "containers[\(index)].\(key)"
        guard let position = recipe.position(of: path) else { return "\(recipe.file): \(path)" }
        return "\(recipe.file):\(position.line):\(position.column): \(path)"
    }
}

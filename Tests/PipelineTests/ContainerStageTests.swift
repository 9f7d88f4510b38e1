import Foundation
@testable import Pipeline
import Recipe
import SystemSupport
import Testing
import TestSupport

/// The containers stage's checks that need no image build.
@Suite struct ContainerStageTests {
    @Test func aRestartPolicyNeedsS6InTheImage() throws {
        let scratch = try Scratch("rast-container-stage")
        let text = """
            name = "t"
            [packages]
            install = ["busybox"]
            [[containers]]
            image = "docker.io/library/busybox:1.36"
            name = "web"
            restart = "always"
            """
        let recipe = try Recipe.parse(text: text, file: "t.toml", baseDirectory: scratch.path)
        let base = scratch.appending("base")
        try Files.createDirectory(base + "/usr/bin")
        let stage = ContainerStage(recipe: recipe, variable: scratch.appending("var"), base: base, progress: SilentProgress())
        do {
            _ = try stage.run()
            Issue.record("the stage ran without s6 in the image")
        } catch {
            #expect("\(error)" == "t.toml:7:11: containers[0].restart: restart = \"always\" needs s6 in the image, which has none (add s6 to packages.install)")
        }
        #expect(!Files.exists(scratch.appending("var")), "nothing was pulled")
    }
}

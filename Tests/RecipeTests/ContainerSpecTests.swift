import Foundation
import Recipe
import SystemSupport
import Testing
import TestSupport

/// `[[containers]]`: images pulled at build time, named containers started at boot.
@Suite struct ContainerSpecTests {
    @Test func imagesAndBootContainers() throws {
        let scratch = try Scratch("rast-recipe")
        try Files.write(scratch.appending("images/index.json"), string: "{}")
        let recipe = try decode(minimalText + """
            [[containers]]
            image = "docker.io/library/busybox:1.36"

            [[containers]]
            image = "oci:images:bb"
            image_name = "bb"
            name = "web"
            command = ["httpd", "-f"]
            environment = ["MODE=prod"]
            volumes = ["/srv/www:/www:ro"]
            network = "host"
            memory = "64M"
            cpus = 0.5
            pids_limit = 32
            read_only = true
            user = "nobody"
            restart = "on-failure:3"
            """, base: scratch.path)
        #expect(recipe.containers.count == 2)
        #expect(recipe.containers[0].image == "docker.io/library/busybox:1.36")
        #expect(!recipe.containers[0].startsAtBoot)
        let web = recipe.containers[1]
        #expect(web.image == "oci:\(scratch.path)/images:bb", "a relative layout is made absolute")
        #expect(web.imageName == "bb")
        #expect(web.name == "web" && web.startsAtBoot)
        #expect(web.command == ["httpd", "-f"])
        #expect(web.environment == ["MODE=prod"])
        #expect(web.volumes == ["/srv/www:/www:ro"])
        #expect(web.network == .host)
        #expect(web.memory == 64 << 20)
        #expect(web.cpus == 0.5)
        #expect(web.pidsLimit == 32)
        #expect(web.readOnly)
        #expect(web.user == "nobody")
        #expect(web.restart == "on-failure:3")
        #expect(recipe.containers[0].restart == "no", "no restart unless asked")
        let configure = try #require(recipe.plan().first { $0.kind == .configure })
        #expect(configure.details.contains("container image oci:\(scratch.path)/images:bb stored in /var/lib/rast/oci, container web started at boot"))
    }

    @Test func mistakesAreNamedWithTheirPosition() throws {
        let missing = try #require(problem(minimalText + """
            [[containers]]
            image = "oci:nowhere:bb"
            """))
        #expect(missing.keyPath == "containers[0].image")
        #expect(missing.position == at(5, 9))
        #expect(missing.message.contains("'nowhere' is not an OCI image layout"))

        expectProblem(minimalText + """
            [[containers]]
            image = "busybox"
            name = "b"
            network = "bridge"
            """, "containers[0].network", at: at(7, 11), "'bridge' is not a network mode: none or host")
        expectProblem(minimalText + """
            [[containers]]
            image = "busybox"
            name = "b"
            restart = "unless-stopped"
            """, "containers[0].restart", at: at(7, 11),
            "'unless-stopped' is not a restart policy: no, always, on-failure or on-failure:MAX (MAX at least 1)")
        expectProblem(minimalText + """
            [[containers]]
            image = "busybox"
            restart = "always"
            """, "containers[0].restart", at: at(6, 11), "restart needs a name: only a named container is started at boot")

        let volume = try #require(problem(minimalText + """
            [[containers]]
            image = "busybox"
            name = "b"
            volumes = ["data:/data"]
            """))
        #expect(volume.keyPath == "containers[0].volumes[0]")

        let unnamed = try #require(problem(minimalText + """
            [[containers]]
            image = "busybox"
            command = ["sleep", "1"]
            """))
        #expect(unnamed.message.contains("container options need a name"))

        let duplicate = problems(minimalText + """
            [[containers]]
            image = "busybox"
            name = "b"
            [[containers]]
            image = "busybox"
            name = "b"
            """)
        #expect(duplicate.count == 1)
        #expect(duplicate.first?.message.contains("duplicate container name 'b'") == true)
    }
}

package org.vbake.bake;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.vbake.api.BadInputException;
import org.vbake.api.RuntimeKind;

class ComposeStackTest {

    private static final String DIGEST = "sha256:" + "ab".repeat(32);
    private static final String WEB = "127.0.0.1:5000/web:1@" + DIGEST;
    private static final String DB = "127.0.0.1:5000/db@sha256:" + "cd".repeat(32);

    @TempDir
    Path dir;

    private Path write(String yaml) throws Exception {
        Path d = Files.createDirectories(dir.resolve("My Shop"));
        return Files.writeString(d.resolve("compose.yaml"), yaml);
    }

    private static final String STACK = """
            services:
              web:
                image: %s
                command: httpd -f -p "80" -h /www
                environment:
                  MODE: prod
                ports:
                  - "8080:80"
                volumes:
                  - data:/www:ro
                restart: always
                depends_on:
                  db:
                    condition: service_started
              db:
                image: %s
                entrypoint: [/bin/sh, -c]
                command: ["exec sleep 1d"]
                environment:
                  - LEVEL=2
                volumes:
                  - data:/data
                  - /srv/db:/var/db
            volumes:
              data:
            x-note: ignored
            """.formatted(WEB, DB);

    @Test
    void readsTheServicesItTranslates() throws Exception {
        ComposeStack s = ComposeStack.read(write(STACK), 4, null, false);
        assertThat(s.project()).isEqualTo("myshop");
        assertThat(s.volumes()).containsExactly("data");
        assertThat(s.services()).extracting(ComposeStack.Service::name).containsExactly("web", "db");
        ComposeStack.Service web = s.services().get(0);
        assertThat(web.command()).containsExactly("httpd", "-f", "-p", "80", "-h", "/www");
        assertThat(web.dependsOn()).containsExactly("db");
        assertThat(web.environment()).containsExactly(Map.entry("MODE", "prod"));
        ComposeStack.Service db = s.services().get(1);
        assertThat(db.entrypoint()).containsExactly("/bin/sh", "-c");
        assertThat(db.environment()).containsExactly(Map.entry("LEVEL", "2"));
        assertThat(s.startOrder()).extracting(ComposeStack.Service::name).containsExactly("db", "web");
        assertThat(ComposeStack.read(write("name: Shop_2\n" + STACK), 4, "other", false).project()).isEqualTo("shop_2");
        assertThat(ComposeStack.read(write(STACK), 4, "given", false).project()).isEqualTo("given");
    }

    @Test
    void dockerGetsTheFileAsWrittenAndAUnitThatBringsItUp() throws Exception {
        ComposeStack s = ComposeStack.read(write(STACK), 4, "shop", false);
        Map<String, byte[]> files = ComposeUnits.generate(s, RuntimeKind.DOCKER, "systemd");
        assertThat(files).containsOnlyKeys("compose/shop/compose.yaml", "systemd/vbake-compose-shop.service");
        assertThat(new String(files.get("compose/shop/compose.yaml"), StandardCharsets.UTF_8)).isEqualTo(STACK);
        assertThat(new String(files.get("systemd/vbake-compose-shop.service"), StandardCharsets.UTF_8))
                .contains("Requires=docker.service\n", "Type=oneshot\n", "RemainAfterExit=yes\n",
                        "ExecStart=/usr/bin/docker compose --project-name shop --file "
                                + "/usr/share/vbake/compose/shop/compose.yaml up --detach --no-build --pull never\n",
                        "ExecStop=/usr/bin/docker compose --project-name shop --file "
                                + "/usr/share/vbake/compose/shop/compose.yaml down\n",
                        "WantedBy=multi-user.target\n");
    }

    @Test
    void podmanGetsQuadletFiles() throws Exception {
        ComposeStack s = ComposeStack.read(write(STACK), 4, "shop", false);
        Map<String, byte[]> files = ComposeUnits.generate(s, RuntimeKind.PODMAN, "quadlet");
        assertThat(files).containsOnlyKeys("quadlet/shop.network", "quadlet/shop-data.volume",
                "quadlet/shop-web.container", "quadlet/shop-db.container");
        assertThat(text(files, "quadlet/shop.network")).contains("[Network]\nNetworkName=shop_default\n");
        assertThat(text(files, "quadlet/shop-data.volume")).contains("[Volume]\nVolumeName=shop_data\n");
        assertThat(text(files, "quadlet/shop-web.container")).contains(
                "Requires=shop-db.service\nAfter=shop-db.service\n",
                "Image=" + WEB + "\n", "ContainerName=shop-web-1\n", "Network=shop.network\n", "NetworkAlias=web\n",
                "Environment=MODE=prod\n", "PublishPort=8080:80\n", "Volume=shop-data.volume:/www:ro\n",
                "Exec=httpd -f -p 80 -h /www\n", "Restart=always\n", "WantedBy=multi-user.target default.target\n");
        assertThat(text(files, "quadlet/shop-db.container")).contains("Entrypoint=\"[\\\"/bin/sh\\\",\\\"-c\\\"]\"\n",
                "Exec=\"exec sleep 1d\"\n", "Volume=shop-data.volume:/data\n", "Volume=/srv/db:/var/db\n", "Restart=no\n")
                .doesNotContain("Requires=");
    }

    private static String text(Map<String, byte[]> files, String name) {
        return new String(files.get(name), StandardCharsets.UTF_8);
    }

    @Test
    void keysItDoesNotTranslateAreRefusedWithFileLineAndKey() throws Exception {
        assertError("""
                services:
                  web:
                    image: %s
                    healthcheck:
                      test: ["CMD", "true"]
                """.formatted(WEB), ":4: services.web.healthcheck: not translated by vbake (it carries service keys "
                + "image, command, entrypoint, environment, ports, volumes, restart, depends_on, container_name); "
                + "remove it or bake the stack another way");
        assertError("""
                services:
                  web:
                    image: %s
                networks:
                  front: {}
                """.formatted(WEB), ":4: networks: not translated by vbake (it carries top-level keys services, "
                + "volumes, name, version and x-*); remove it or bake the stack another way");
        assertError("""
                services:
                  web:
                    build: .
                """, ":3: services.web.build: vbake bakes images, it builds none: build the image, push it and give "
                + "image: with its digest");
        assertError("""
                services:
                  web:
                    image: 127.0.0.1:5000/web:1
                """, ":3: services.web.image: '127.0.0.1:5000/web:1' is not pinned by digest (add @sha256:... or "
                + "allow-unpinned: true on the manifest entry)");
        assertError("""
                services:
                  web:
                    image: %s
                    environment:
                      TOKEN:
                """.formatted(WEB), ":5: services.web.environment.TOKEN: has no value: compose would take it from the "
                + "environment of whoever starts the stack; write the value");
        assertError("""
                services:
                  web:
                    image: %s
                    volumes:
                      - ./site:/www
                """.formatted(WEB), ":5: services.web.volumes: './site' is a path on the build host; on the device "
                + "give an absolute path, or a named volume");
        assertError("""
                services:
                  web:
                    image: %s
                    depends_on: [db]
                """.formatted(WEB), ":2: services.web.depends_on: 'db' is not a service of this file");
        assertError("""
                services:
                  a:
                    image: %s
                    depends_on: [b]
                  b:
                    image: %s
                    depends_on: [a]
                """.formatted(WEB, WEB), ":2: services.a.depends_on: depends on itself (a -> b -> a)");
        assertError("""
                services:
                  web:
                    image: %s
                    ports: ["80"]
                """.formatted(WEB), ":4: services.web.ports: '80': give [IP:]HOST:CONTAINER[/tcp|udp] (a port "
                + "without a host port would get a random one at every boot)");
        assertError("""
                services:
                  web:
                    image: %s
                    depends_on:
                      db:
                        condition: service_healthy
                  db:
                    image: %s
                """.formatted(WEB, DB), ":6: services.web.depends_on.db.condition: 'service_healthy' is not translated "
                + "by vbake (it carries service_started (systemd orders the units; it cannot wait for health or "
                + "completion))");
    }

    @Test
    void manifestEntryBakesTheServiceImagesOnce() throws Exception {
        Path compose = write(STACK.replace(DB, WEB));
        Path m = Files.writeString(dir.resolve("bake.yaml"), """
                arch: aarch64
                runtime: podman
                images:
                  - compose: "My Shop/compose.yaml"
                    name: shop
                  - ref: %s
                """.formatted(DB));
        BakeManifest manifest = BakeManifestReader.read(m);
        assertThat(manifest.stacks()).extracting(ComposeStack::project).containsExactly("shop");
        assertThat(manifest.stacks().get(0).file()).isEqualTo(compose.toAbsolutePath().normalize());
        assertThat(manifest.images()).extracting(BakeManifest.Image::ref).containsExactly(DB, WEB);
        Path old = Files.writeString(dir.resolve("old.yaml"), """
                arch: aarch64
                runtime: podman
                suite: bookworm
                images:
                  - compose: "My Shop/compose.yaml"
                """);
        assertThatThrownBy(() -> BakeManifestReader.read(old)).isInstanceOf(BadInputException.class)
                .hasMessage(old + ":5: images[0].compose: podman stacks are installed as Quadlet files, which "
                        + "bookworm's podman 4.3 does not read; use suite: trixie");
    }

    private void assertError(String yaml, String expectedAfterFile) throws Exception {
        Path file = write(yaml);
        assertThatThrownBy(() -> ComposeStack.read(file, 1, null, false))
                .isInstanceOf(BadInputException.class)
                .hasMessage(file + expectedAfterFile);
    }
}

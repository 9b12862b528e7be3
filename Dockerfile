# One image for the runner (`stampede`, the default entrypoint: runner pods run `stampede agent`)
# and the operator (`stampede-operator run`). Non-root and without a shell.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# Built one at a time so the runner is resolved without the operator's kube features.
RUN cargo build --release --locked -p stampede-runner && cargo build --release --locked -p stampede-operator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/stampede /usr/local/bin/stampede
COPY --from=build /src/target/release/stampede-operator /usr/local/bin/stampede-operator
USER 65532:65532
ENTRYPOINT ["stampede"]

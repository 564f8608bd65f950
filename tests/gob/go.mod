module minimega-rs/gobfixture

go 1.19

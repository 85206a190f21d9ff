//! The engine README's Rust block is `examples/readme.rs`, verbatim: this test checks that the
//! two are the same text and runs the example, so a change that breaks the printed example fails
//! here.

mod example {
    include!("../examples/readme.rs");

    pub fn run() -> Result<(), Box<dyn std::error::Error>> {
        main()
    }
}

/// rust_blocks returns the body of every ```rust fence in `markdown`.
fn rust_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut open: Option<String> = None;
    for line in markdown.lines() {
        match open.as_mut() {
            None if line.trim_end() == "```rust" => open = Some(String::new()),
            None => {}
            Some(_) if line.trim_end() == "```" => blocks.extend(open.take()),
            Some(body) => {
                body.push_str(line);
                body.push('\n');
            }
        }
    }
    blocks
}

#[test]
fn the_readme_rust_block_is_examples_readme_rs() {
    let readme = include_str!("../README.md");
    let example = include_str!("../examples/readme.rs");
    let blocks = rust_blocks(readme);
    assert_eq!(blocks.len(), 1, "the engine README has one Rust block");
    // The example file is its opening comment, a blank line, and then the block.
    let (_comment, code) = example.split_once("\n\n").unwrap();
    assert!(
        code == blocks[0],
        "the engine README's Rust block differs from examples/readme.rs \
         (after its opening comment); keep the two the same"
    );
}

#[test]
fn the_readme_rust_example_runs() {
    let result = example::run();
    // The example removes its data itself; this removes it when the example failed midway.
    let dir = std::env::temp_dir().join(format!("zongzi-example-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(dir);
    result.unwrap();
}

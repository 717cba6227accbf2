//! The methods of [`MovingAverage`](crate::MovingAverage) and
//! [`SharedMovingAverage`](crate::SharedMovingAverage) as inherent methods of each moving
//! average, so that using one needs no trait import. Each forwards to the trait; the traits stay
//! the place where the behaviour is specified. Also the trait methods that a shared type
//! implements the same way.

/// Gives a moving-average type `$ty<T>` the trait's reads, `push` and `clear` as inherent
/// methods: `owned` for a single-owner type (`push(&mut self)`, from `MovingAverage`), `shared`
/// for one that threads share (`push(&self)`, from `SharedMovingAverage`); `panics` says when
/// `push` panics.
macro_rules! inherent_methods {
    (owned $ty:ident, panics: $panics:literal) => {
        $crate::inherent::inherent_methods!(@impl $ty, MovingAverage, [mut], $panics);
    };
    (shared $ty:ident, panics: $panics:literal) => {
        $crate::inherent::inherent_methods!(@impl $ty, SharedMovingAverage, [], $panics);
    };
    (@impl $ty:ident, $trait:ident, [$($let_mut:ident)?], $panics:literal) => {
        impl<T: $crate::Sample> $ty<T> {
            $crate::inherent::read! { $ty, $($let_mut)?,
                /// The window size `N`: the most elements the moving average keeps.
                window() -> usize, "3"
            }
            $crate::inherent::read! { $ty, $($let_mut)?,
                /// The number of elements in the window.
                len() -> usize, "3"
            }
            $crate::inherent::read! { $ty, $($let_mut)?,
                /// Whether the window holds no element.
                is_empty() -> bool, "false"
            }
            $crate::inherent::read! { $ty, $($let_mut)?,
                /// Whether the window holds `N` elements.
                is_full() -> bool, "true"
            }
            $crate::inherent::read! { $ty, $($let_mut)?,
                /// The sum of the window: exact for integers, the exact sum rounded once for
                /// floats.
                sum() -> T::Sum, "9"
            }
            $crate::inherent::read! { $ty, $($let_mut)?,
                /// The mean of the window, correctly rounded; `None` if it is empty.
                average() -> Option<f64>, "Some(3.0)"
            }
            $crate::inherent::read! { $ty, $($let_mut)?,
                /// The oldest element in the window.
                oldest() -> Option<T>, "Some(2)"
            }
            $crate::inherent::read! { $ty, $($let_mut)?,
                /// The newest element in the window.
                newest() -> Option<T>, "Some(4)"
            }
            $crate::inherent::read! { $ty, $($let_mut)?,
                /// The element at `index`, counting from the oldest.
                get(index: usize) -> Option<T>, "Some(3)", "1"
            }
            $crate::inherent::read! { $ty, $($let_mut)?,
                /// The window's elements, oldest first.
                to_vec() -> Vec<T>, "[2, 3, 4]"
            }

            #[doc = concat!(
                "Adds an element, evicting the oldest if the window is full: [`", stringify!($trait),
                "::push`](crate::", stringify!($trait), "::push), which documents it in full.\n\n",
                "# Panics\n\n", $panics, "\n\n",
                "# Examples\n\n```\n",
                $crate::inherent::example_start!($ty, $($let_mut)?),
                "assert_eq!(m.to_vec(), [2, 3, 4]);\n",
                "# Ok::<(), mavg::WindowError>(())\n```"
            )]
            #[inline]
            pub fn push(&$($let_mut)? self, value: T) {
                $crate::$trait::push(self, value);
            }

            #[doc = concat!(
                "Removes every element: [`", stringify!($trait), "::clear`](crate::",
                stringify!($trait), "::clear).\n\n",
                "# Examples\n\n```\n",
                $crate::inherent::example_start!($ty, $($let_mut)?),
                "m.clear();\n",
                "assert_eq!(m.average(), None);\n",
                "# Ok::<(), mavg::WindowError>(())\n```"
            )]
            pub fn clear(&$($let_mut)? self) {
                $crate::$trait::clear(self);
            }
        }
    };
}

/// One forwarding read with its example: a window of 3 after pushing 1, 2, 3, 4.
macro_rules! read {
    ($ty:ident, $($let_mut:ident)?, $(#[doc = $doc:expr])* $name:ident($($arg:ident: $arg_ty:ty)?) -> $ret:ty, $expected:expr $(, $call:expr)?) => {
        $(#[doc = $doc])*
        #[doc = concat!(
            "\n\nAs [`MovingAverage::", stringify!($name), "`](crate::MovingAverage::",
            stringify!($name), "), which documents it in full.\n\n",
            "# Examples\n\n```\n",
            $crate::inherent::example_start!($ty, $($let_mut)?),
            "assert_eq!(m.", stringify!($name), "(", $($call,)? "), ", $expected, ");\n",
            "# Ok::<(), mavg::WindowError>(())\n```"
        )]
        #[must_use]
        #[inline]
        pub fn $name(&self $(, $arg: $arg_ty)?) -> $ret {
            $crate::MovingAverage::$name(self $(, $arg)?)
        }
    };
}

/// The first lines of every example: a window of 3 over the integers 1 to 4.
macro_rules! example_start {
    ($ty:ident, $($let_mut:ident)?) => {
        concat!(
            "let ", $(stringify!($let_mut), " ",)? "m = mavg::", stringify!($ty), "::<i64>::new(3)?;\n",
            "for x in 1..=4 {\n    m.push(x);\n}\n"
        )
    };
}

/// `MovingAverage::push` and `clear` for a type that threads share, inside its
/// `impl MovingAverage`: an exclusive borrow is also a shared one, so both take the shared path.
macro_rules! exclusive_through_shared {
    () => {
        /// As [`SharedMovingAverage::push`](crate::SharedMovingAverage::push), which documents
        /// it in full.
        #[inline]
        fn push(&mut self, value: Self::Item) {
            $crate::SharedMovingAverage::push(&*self, value);
        }

        /// As [`SharedMovingAverage::clear`](crate::SharedMovingAverage::clear).
        fn clear(&mut self) {
            $crate::SharedMovingAverage::clear(&*self);
        }
    };
}

pub(crate) use {example_start, exclusive_through_shared, inherent_methods, read};
